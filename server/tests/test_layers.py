"""The server's structure, checked: no import cycles, the layers depend downwards only
(cli/server → app → transport → service → engine), and the service layer is typed against the
real engine, which every in-process test runs on."""

from __future__ import annotations

import typing

import grimp
import pytest
from engram_server.engine.engine import Engine
from engram_server.service.base import ServiceBase

PACKAGE = "engram_server"
LAYERS = ("cli", "server", "app", "transport", "service", "engine")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # Imports inside functions and under TYPE_CHECKING count too.
    return grimp.build_graph(PACKAGE, include_external_packages=False)


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_layers_depend_downwards_only(graph: grimp.ImportGraph) -> None:
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS, containers={PACKAGE})
    found = [f"{d.importer} -> {d.imported}: {[r.chain for r in d.routes]}" for d in illegal]
    assert not found, "upward imports:\n" + "\n".join(found)


def test_engine_never_sees_the_wire_format(graph: grimp.ImportGraph) -> None:
    for module in ("engram_server.pb", "engram_server._gen"):
        assert not graph.chain_exists(importer="engram_server.engine", imported=module, as_packages=True)


def test_the_service_layer_is_typed_against_the_engine() -> None:
    """The annotation names the concrete Engine (mypy --strict checks every use against it)."""
    from engram_server.config import Config
    from engram_server.metrics import Metrics
    from engram_server.service import base
    from engram_server.state import ServerState

    names = {"Engine": Engine, "Config": Config, "Metrics": Metrics, "ServerState": ServerState}
    hints = typing.get_type_hints(ServiceBase.__init__, globalns={**vars(base), **names})
    assert hints["engine"] is Engine


def test_in_process_tests_use_the_real_engine(engine: object) -> None:
    assert type(engine) is Engine

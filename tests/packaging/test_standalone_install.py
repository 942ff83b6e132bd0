"""The server package stands alone: installed as a user would, outside the repository, it serves.

Three installs, each into an empty environment under a temporary directory (never the
repository's `.venv`), from a copy of `server/` (so nothing is built inside the checkout):

* `pip install <server>`: the source tree, as `pip install ./server` does;
* a wheel built by `python -m build`, installed with pip;
* `uv tool install <server>`: the tool form, with its own `engram-server` on PATH.

Each must answer `/health` healthy with the bundled model (built from scratch into an empty cache)
and store and recall a memory with the quick start's calls. Installs use
`requirements/runtime.lock` as constraints so the test is reproducible; the ranges a plain
`pip install` may pick are checked against the lock by test_lock_agrees_with_pyproject.

The environments are also checked to hold nothing the server does not need (no development tool,
no test runner) and to import every module of the package.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.common import ROOT_KEY, ServerProcess, free_port  # noqa: E402

RUNTIME_LOCK = REPO / "requirements" / "runtime.lock"
DEV_LOCK = REPO / "requirements" / "dev.lock"
RUNTIME_IN = REPO / "requirements" / "runtime.in"
PYPROJECT = REPO / "server" / "pyproject.toml"
UV = REPO / ".uv" / "bin" / "uv"
INSTALL_TIMEOUT = 1200  # seconds: a first install downloads about 250 MB of wheels

# Packages a server install must never pull in: development tools, test runners, SDK clients.
DEV_ONLY = {"pytest", "mypy", "ruff", "mkdocs", "mkdocs-material", "schemathesis", "bm25s", "grpcio",
            "grpcio-tools", "betterproto2", "betterproto2-compiler", "matplotlib", "hypothesis"}


def locked_pins(lock: Path) -> dict[str, set[Version]]:
    """name -> pinned versions (a universal lock may pin two, one per Python version range)."""
    pins: dict[str, set[Version]] = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if m:
            pins.setdefault(canonicalize_name(m.group(1)), set()).add(Version(m.group(2)))
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_lock_agrees_with_pyproject() -> None:
    """runtime.in, server/pyproject.toml and the locks name the same packages at compatible versions."""
    declared = {canonicalize_name(r.name): r for r in declared_requirements()}
    listed = {
        canonicalize_name(Requirement(line.split("#")[0].strip()).name)
        for line in RUNTIME_IN.read_text().splitlines()
        if line.split("#")[0].strip()
    }
    assert listed == set(declared), "requirements/runtime.in and server/pyproject.toml must list the same packages"
    runtime = locked_pins(RUNTIME_LOCK)
    dev = locked_pins(DEV_LOCK)
    for name, req in declared.items():
        assert name in runtime, f"{name} is not in requirements/runtime.lock (run make lock)"
        outside = [v for v in runtime[name] if v not in req.specifier]
        assert not outside, f"runtime.lock pins {name} {outside}, outside {req}"
    for name, versions in runtime.items():
        assert dev.get(name) == versions, f"dev.lock pins {name} {dev.get(name)}, runtime.lock {versions}"
    assert not DEV_ONLY & set(runtime), f"development packages in the runtime lock: {DEV_ONLY & set(runtime)}"


def copy_server(dest: Path) -> Path:
    """The server project as a user gets it: sources and metadata, no build outputs or tests."""
    shutil.copytree(
        REPO / "server",
        dest,
        ignore=shutil.ignore_patterns("build", "dist", "tests", "*.egg-info", "__pycache__", "*.pyc"),
    )
    return dest


def run(cmd: list[str | Path], **kw: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "UV_"))}
    env.update(kw.pop("env", {}))  # type: ignore[arg-type]
    subprocess.run([str(c) for c in cmd], check=True, timeout=INSTALL_TIMEOUT, env=env, **kw)  # type: ignore[call-overload]


def new_venv(path: Path) -> Path:
    run([sys.base_prefix + "/bin/python3", "-m", "venv", path])
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standalone")


@pytest.fixture(scope="module")
def source_tree(work: Path) -> Path:
    return copy_server(work / "server")


@pytest.fixture(scope="module")
def wheel(work: Path, source_tree: Path) -> Path:
    out = work / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", out, source_tree])
    (whl,) = out.glob("engram_memory_server-*.whl")
    return whl


def pip_install(python: Path, target: Path) -> None:
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", RUNTIME_LOCK, target])


def installed(python: Path) -> set[str]:
    code = "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'])"
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return {canonicalize_name(n) for n in out.split()}


def import_every_module(python: Path) -> None:
    """Every module of the package imports with the runtime dependencies alone (a lazily
    imported module needing a development package would fail here, not in production)."""
    # engram_server.cluster's modules need the `cluster` extra (nats-py, aetcd): not runtime.
    code = (
        "import importlib, pkgutil, engram_server\n"
        "for m in pkgutil.walk_packages(engram_server.__path__, 'engram_server.'):\n"
        "    if not m.name.startswith('engram_server.cluster.'):\n"
        "        importlib.import_module(m.name)\n"
    )
    subprocess.run([python, "-c", code], check=True, cwd="/", timeout=300)


def serve_store_recall(server_bin: Path, work: Path, name: str) -> None:
    """Start the installed server on an empty data dir and model cache; the quick start's calls."""
    home = work / f"{name}-home"
    server = ServerProcess(
        data_dir=home / "data",
        encryption_key=secrets.token_hex(32),
        server_bin=server_bin,
        env={"XDG_CACHE_HOME": str(home / "cache"), "HOME": str(home)},
    )
    home.mkdir()
    server.start(timeout=300)
    try:
        auth = {"Authorization": f"Bearer {ROOT_KEY}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as http:
            assert http.get("/health").json()["status"] == "healthy"
            stored = http.post(
                "/v1/memories",
                json={"agent_id": "assistant", "content": "The user prefers window seats on long flights",
                      "importance": 0.8},
            )
            assert stored.status_code == 200, stored.text
            recalled = http.post("/v1/memories/recall",
                                 json={"agent_id": "assistant", "query": "seat preference", "top_k": 3})
            assert recalled.status_code == 200, recalled.text
            hits = recalled.json()["memories"]
            assert [h["id"] for h in hits] == [stored.json()["memory"]["id"]]
            assert hits[0]["content"] == "The user prefers window seats on long flights"
        assert (home / "cache" / "engram").is_dir(), "the bundled model was not built into the cache"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pip_source_env(work: Path, source_tree: Path) -> Iterator[Path]:
    python = new_venv(work / "venv-source")
    pip_install(python, source_tree)
    yield python


def test_pip_install_source_serves(pip_source_env: Path, work: Path) -> None:
    assert not DEV_ONLY & installed(pip_source_env)
    import_every_module(pip_source_env)
    serve_store_recall(pip_source_env.parent / "engram-server", work, "source")
    cluster_needs_its_extra(pip_source_env.parent / "engram-server", work)


def cluster_needs_its_extra(server_bin: Path, work: Path) -> None:
    """Cluster mode without the `cluster` extra: a clear refusal naming the install command."""
    env = {
        **os.environ, "ENGRAM_CLUSTER_ETCD": "127.0.0.1:1", "ENGRAM_CLUSTER_NATS": "nats://127.0.0.1:1",
        "ENGRAM_CLUSTER_NODE_ID": "n1", "ENGRAM_ENCRYPTION_KEY": secrets.token_hex(32),
        "ENGRAM_DATA_DIR": str(work / "cluster-data"), "ENGRAM_PORT": str(free_port()),
    }
    proc = subprocess.run([server_bin, "serve"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "pip install 'engram-memory-server[cluster]'" in proc.stderr + proc.stdout, proc.stderr[-2000:]


def test_pip_install_wheel_serves(wheel: Path, work: Path) -> None:
    python = new_venv(work / "venv-wheel")
    pip_install(python, wheel)
    assert not DEV_ONLY & installed(python)
    serve_store_recall(python.parent / "engram-server", work, "wheel")


def test_wheel_contents(wheel: Path) -> None:
    """The wheel carries the generated messages, the OpenAPI document the server serves and the
    tokenizer; never tests or build outputs."""
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "engram_server/engine/models_data/all-MiniLM-L6-v2/tokenizer.json",
        "engram_server/engine/models_data/all-MiniLM-L6-v2/NOTICE.md",
        "engram_server/_gen/engram/v1/messages_pb2.py",
        "engram_server/_gen/openapi.json",
        "engram_server/py.typed",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or n.endswith(".pyc")]


def test_uv_tool_install_serves(work: Path, source_tree: Path) -> None:
    assert UV.exists(), "make setup installs uv into .uv/"
    tools, bin_dir = work / "uv-tools", work / "uv-bin"
    env = {"UV_TOOL_DIR": str(tools), "UV_TOOL_BIN_DIR": str(bin_dir)}
    run([UV, "tool", "install", "-q", "--python", sys.base_prefix + "/bin/python3", "-c", RUNTIME_LOCK,
         source_tree], env=env)
    serve_store_recall(bin_dir / "engram-server", work, "uv-tool")

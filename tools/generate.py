"""Regenerate (or check) every Python-side artifact derived from ``proto/``.

Outputs, relative to the repository root:

* ``sdk-python/src/engram/_gen/``: betterproto2 messages, without client stubs: the SDK has its
  own transports, and stubs made the server import grpcio and grpclib at start-up (0.1 s);
* ``server/src/engram_server/_gen/engram.binpb``: the descriptor set (imports and source info),
  from which the server reads its REST routes;
* ``server/src/engram_server/_gen/openapi.json`` and ``docs/openapi.json``: the OpenAPI document;
* ``docs/reference/api.md``: the API reference page.

Everything is first written to a staging directory, so a failed run never leaves half-written
output. ``--check`` compares the staging copy with the tree and lists stale files (exit 1);
it does not need a clean git tree. The language SDKs regenerate through their own Makefiles.

    python -m tools.generate [--repo DIR] [--check]
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from tools import gen_api_reference, gen_openapi
from tools.protos import Api, build_descriptor_set, proto_files, run_protoc

PYTHON_GEN = Path("sdk-python/src/engram/_gen")
DESCRIPTOR_SET = Path("server/src/engram_server/_gen/engram.binpb")
OPENAPI_OUTPUTS = (Path("server/src/engram_server/_gen/openapi.json"), Path("docs/openapi.json"))
API_REFERENCE = Path("docs/reference/api.md")
FILES = (DESCRIPTOR_SET, *OPENAPI_OUTPUTS, API_REFERENCE)
IGNORED = {"__pycache__"}


def _plugin() -> str:
    """The betterproto2 protoc plugin of the running interpreter's environment."""
    plugin = Path(sys.executable).parent / "protoc-gen-python_betterproto2"
    if not plugin.exists():
        raise RuntimeError(f"{plugin} not found: run `make setup` (betterproto2-compiler)")
    return str(plugin)


def generate_into(repo: Path, stage: Path) -> None:
    """Write every output under ``stage`` (same relative paths as in the repository)."""
    python_out = stage / PYTHON_GEN
    python_out.mkdir(parents=True)
    run_protoc(
        repo,
        [
            f"--plugin=protoc-gen-python_betterproto2={_plugin()}",
            f"--python_betterproto2_out={python_out.resolve()}",
            "--python_betterproto2_opt=client_generation=none",
        ],
        proto_files(repo),
    )
    api = Api(build_descriptor_set(repo, stage / DESCRIPTOR_SET))
    openapi = gen_openapi.render(api)
    for path in OPENAPI_OUTPUTS:
        (stage / path).parent.mkdir(parents=True, exist_ok=True)
        (stage / path).write_text(openapi, encoding="utf-8")
    (stage / API_REFERENCE).parent.mkdir(parents=True, exist_ok=True)
    (stage / API_REFERENCE).write_text(gen_api_reference.render(api), encoding="utf-8")


def _tree(root: Path) -> set[Path]:
    if not root.is_dir():
        return set()
    return {
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and not IGNORED.intersection(p.relative_to(root).parts)
    }


def differences(repo: Path, stage: Path) -> list[str]:
    """Human-readable lines, one per output file that differs from the fresh generation."""
    problems: list[str] = []
    fresh, current = _tree(stage / PYTHON_GEN), _tree(repo / PYTHON_GEN)
    for rel in sorted(fresh | current):
        path = PYTHON_GEN / rel
        if rel not in current:
            problems.append(f"missing: {path}")
        elif rel not in fresh:
            problems.append(f"not generated (remove it): {path}")
        elif not filecmp.cmp(stage / path, repo / path, shallow=False):
            problems.append(f"stale: {path}")
    for path in FILES:
        if not (repo / path).is_file():
            problems.append(f"missing: {path}")
        elif not filecmp.cmp(stage / path, repo / path, shallow=False):
            problems.append(f"stale: {path}")
    return problems


def install(repo: Path, stage: Path) -> None:
    """Move the staged outputs into the repository (the Python package directory is replaced)."""
    target = repo / PYTHON_GEN
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(stage / PYTHON_GEN, target)
    for path in FILES:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stage / path, repo / path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--check", action="store_true", help="fail, listing stale files, instead of writing")
    args = parser.parse_args(argv)
    repo: Path = args.repo.resolve()
    with tempfile.TemporaryDirectory(prefix="engram-generate-") as tmp:
        stage = Path(tmp)
        generate_into(repo, stage)
        if args.check:
            problems = differences(repo, stage)
            for line in problems:
                print(f"check-generate: {line}")
            if problems:
                print("check-generate: generated files are out of date with proto/: run `make generate`")
                return 1
            print("check-generate: Python, descriptor set, OpenAPI and API reference are up to date")
            return 0
        install(repo, stage)
    outputs = [PYTHON_GEN.as_posix() + "/", *(p.as_posix() for p in FILES)]
    print("generated: " + ", ".join(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

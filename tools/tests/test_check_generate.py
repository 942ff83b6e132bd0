"""`make check-generate` passes on fresh output and fails, naming the files, when a proto changes.

Runs in a temporary copy of the parts of the repository that generation reads and writes (the
real proto/ is never touched), using the repository's .venv read-only (`NO_SETUP=1`: make never
installs anything from the copy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
COPY = [
    "Makefile",
    "proto",
    "tools",
    "requirements",
    "server/pyproject.toml",
    "sdk-python/pyproject.toml",
    "sdk-python/src/engram/_gen",
    "server/src/engram_server/_gen",
    "docs/openapi.json",
    "docs/reference/api.md",
    # The status code tables that tools/generate.py writes into the other SDKs.
    "sdk-typescript/src/codes.gen.ts",
    "sdk-go/codes_gen.go",
    "sdk-rust/src/error/codes.rs",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for rel in COPY:
        src, dst = REPO / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "node_modules", "tests"))
        else:
            shutil.copy2(src, dst)
    return root


def check_generate(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    cmd = ["make", "-s", "check-generate", f"VENV={VENV}", "NO_SETUP=1"]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_fresh_output_passes(tree: Path) -> None:
    result = check_generate(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


def test_edited_proto_comment_is_detected(tree: Path) -> None:
    proto = tree / "proto/engram/v1/messages.proto"
    text = proto.read_text(encoding="utf-8")
    marker = "// The text of the memory."
    assert marker in text
    proto.write_text(text.replace(marker, "// The text of the memory, edited without make generate."), encoding="utf-8")

    result = check_generate(tree)
    assert result.returncode != 0
    out = result.stdout
    for stale in (
        "stale: docs/reference/api.md",
        "stale: docs/openapi.json",
        "stale: server/src/engram_server/_gen/openapi.json",
        "stale: server/src/engram_server/_gen/engram.binpb",
        "stale: sdk-python/src/engram/_gen/engram/v1/__init__.py",
    ):
        assert stale in out, out
    assert "run 'make generate'" in out


def test_edited_status_code_mapping_is_detected(tree: Path) -> None:
    proto = tree / "proto/third_party/google/rpc/code.proto"
    text = proto.read_text(encoding="utf-8")
    marker = "HTTP Mapping: 499 Client Closed Request"
    assert marker in text
    proto.write_text(text.replace(marker, "HTTP Mapping: 498 Client Closed Request"), encoding="utf-8")

    result = check_generate(tree)
    assert result.returncode != 0
    out = result.stdout
    for stale in (
        "stale: server/src/engram_server/_gen/codes.py",
        "stale: sdk-python/src/engram/_gen/codes.py",
        "stale: sdk-typescript/src/codes.gen.ts",
        "stale: sdk-go/codes_gen.go",
        "stale: sdk-rust/src/error/codes.rs",
        "stale: docs/openapi.json",
    ):
        assert stale in out, out


def test_removed_and_extra_generated_files_are_detected(tree: Path) -> None:
    (tree / "docs/reference/api.md").unlink()
    (tree / "sdk-python/src/engram/_gen/engram/v1/handwritten.py").write_text("x = 1\n", encoding="utf-8")
    result = check_generate(tree)
    assert result.returncode != 0
    assert "missing: docs/reference/api.md" in result.stdout
    assert "not generated (remove it): sdk-python/src/engram/_gen/engram/v1/handwritten.py" in result.stdout


def test_generation_is_deterministic(tree: Path) -> None:
    before = {p: p.read_bytes() for p in (tree / "docs").rglob("*") if p.is_file()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    subprocess.run([str(VENV / "bin/python"), "-m", "tools.generate"], cwd=tree, env=env, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    after = {p: p.read_bytes() for p in (tree / "docs").rglob("*") if p.is_file()}
    assert before == after

"""Running the blocks of one document against a real server (see tools/doctest/__init__.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.doctest.markdown import GO_LANGS, PYTHON_LANGS, RUST_LANGS, SHELL_LANGS, TS_LANGS, Block, Document

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
# The root key every document uses for its examples (docs/quickstart.md starts the server with
# it): the harness's own servers use it and blocks get it as ENGRAM_API_KEY.
DOC_ROOT_KEY = "dev-root-key-change-me"
BLOCK_TIMEOUT = 180.0
SERVER_START_TIMEOUT = 120.0
COMPILE_TIMEOUT = {"go": 300.0, "ts": 180.0, "rust": 900.0}

# Runs a Python block; a block with top-level `await` / `async with` / `async for` runs in
# asyncio.run(), as the asyncio REPL runs such code.
PY_RUNNER = """\
import ast, asyncio, inspect, sys, types
path = sys.argv[1]
code = compile(open(path, encoding="utf-8").read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
scope = {"__name__": "__main__", "__file__": path}
if code.co_flags & inspect.CO_COROUTINE:
    asyncio.run(types.FunctionType(code, scope)())
else:
    exec(code, scope)
"""

TS_PREAMBLE = """\
import { EngramClient as __DoctestClient } from "engram-memory-client";
const client = new __DoctestClient({ baseUrl: process.env.ENGRAM_URL, apiKey: process.env.ENGRAM_API_KEY });
const apiKey: string | undefined = process.env.ENGRAM_API_KEY;
{
"""
TS_POSTAMBLE = "\n}\nclient.close();\n"

GO_TEMPLATE_HEAD = """\
package main

import (
\t"context"
\t"errors"
\t"fmt"
\t"log"
\t"os"
\t"slices"
\t"time"

\tengram "github.com/engram-memory-server/engram/sdk-go"
)

var (
\t_ = context.Background
\t_ = errors.As
\t_ = fmt.Println
\t_ = log.Fatal
\t_ = os.Getenv
\t_ = slices.Values[[]int]
\t_ = time.Second
)

func run(ctx context.Context, client, admin *engram.Client, addr, key string) error {
\tvar err error
\t_ = err
\t{
"""
GO_TEMPLATE_TAIL = """\
\t}
\treturn nil
}

func main() {
\tctx := context.Background()
\taddr, key := os.Getenv("ENGRAM_URL"), os.Getenv("ENGRAM_API_KEY")
\tclient, err := engram.NewClient(ctx, addr, engram.WithAPIKey(key))
\tif err != nil {
\t\tlog.Fatal(err)
\t}
\tdefer client.Close()
\tif err := run(ctx, client, client, addr, key); err != nil {
\t\tlog.Fatal(err)
\t}
}
"""

RUST_TEMPLATE_HEAD = """\
#![allow(unused)]
#[allow(unused_imports)]
use engram_client::*;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let client = engram_client::Client::builder()
        .endpoint(std::env::var("ENGRAM_URL")?)
        .api_key(std::env::var("ENGRAM_API_KEY")?)
        .build()?;
    let other = client.clone();
    {
"""
RUST_TEMPLATE_TAIL = "\n    }\n    Ok(())\n}\n"

RUST_CARGO_TOML = """\
[package]
name = "engram-doctest"
version = "0.0.0"
edition = "2024"
publish = false

# What docs/sdk/rust.md's Install section says, with the `serde` feature (its JSON section) and
# the tokio features and serde_json that sdk-rust's own tests use, so that the build reuses
# the dependencies compiled in sdk-rust/target.
[dependencies]
engram-memory-client = {{ path = "{sdk}", features = ["serde"] }}
tokio = {{ version = "1", features = ["macros", "rt-multi-thread", "process", "net", "time", "io-util"] }}
serde_json = "1"

[workspace]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def substitute(text: str, ctx: FileContext) -> str:
    """The example addresses of the documents, pointed at this run's server and scratch space."""
    text = re.sub(r"\b(127\.0\.0\.1|localhost):3300\b", rf"\g<1>:{ctx.port}", text)
    text = re.sub(r"(?<=:)50051\b", str(ctx.grpc_port), text)
    # Scratch paths first: a checkout that itself lives under /tmp/ must stay where it is.
    text = re.sub(r"(?<![\w./-])/tmp/", f"{ctx.tmp}/", text)
    return text.replace("/path/to/engram", str(REPO))


@dataclass
class Result:
    block: Block
    status: str  # ok, FAIL, skipped, shown, compiled, server
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log: Path
    what: str

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the whole process group (`make serve` runs the server in a child), then
        wait until every process of the group has exited; SIGKILL after `timeout`."""
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while True:
            self.proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.05)
        self.proc.wait()


@dataclass
class FileContext:
    doc: Document
    root: Path
    port: int
    grpc_port: int
    venv: Path
    verbose: bool = False
    server: Server | None = None
    compiled: dict[str, dict[int, str | None]] = field(default_factory=dict)  # lang -> line -> error

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def project(self) -> Path:
        return self.root / "project"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def env(self, block: Block | None = None, *, for_server: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGRAM_", "PYTHON", "VIRTUAL_ENV"))}
        env.update(
            PATH=f"{self.venv / 'bin'}:{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            VIRTUAL_ENV=str(self.venv),
            ENGRAM_URL=f"http://127.0.0.1:{self.port}",
            ENGRAM_API_KEY=DOC_ROOT_KEY,
            ENGRAM_HOST="127.0.0.1",
            ENGRAM_PORT=str(self.port),
            ENGRAM_GRPC_PORT=str(self.grpc_port),
            ENGRAM_DATA_DIR=str(self.root / "data"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_DATA_HOME=str(self.root / "share"),
            CURL_HOME=str(self.root / "curl"),
            NO_COLOR="1",
            npm_config_prefer_offline="true",
            npm_config_audit="false",
            npm_config_fund="false",
            npm_config_update_notifier="false",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_PROGRESS_BAR="off",
            CARGO_TERM_COLOR="never",
            CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR", str(REPO / "sdk-rust" / "target")),
        )
        if for_server:
            del env["ENGRAM_API_KEY"]  # a fresh terminal: the block says which key, if any
        if block is not None:
            env.update(block.marker.env)
        return env

    def cwd(self, block: Block, default: str = "work") -> Path:
        where = block.marker.cwd if block.marker.cwd != "work" else default
        return {"repo": REPO, "project": self.project, "work": self.work}[where]


def _tail(text: str, lines: int = 60) -> str:
    parts = text.rstrip().splitlines()
    return "\n".join(parts if len(parts) <= lines else ["...", *parts[-lines:]])


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        return 124, f"{out}\n(timed out after {timeout:.0f} s)"
    return proc.returncode, proc.stdout.decode(errors="replace")


def _map_lines(output: str, pattern: str, first_gen_line: int, doc_first_line: int) -> str:
    """Appends the document line to every `FILE:LINE`-style mention of a generated file."""

    def repl(m: re.Match[str]) -> str:
        gen = int(m.group("line"))
        doc = doc_first_line + gen - first_gen_line
        return f"{m.group(0)} [doc line {doc}]" if doc >= doc_first_line else m.group(0)

    return re.sub(pattern, repl, output)


# ---------------------------------------------------------------------------------------------
# servers


def wait_healthy(ctx: FileContext, server: Server, timeout: float = SERVER_START_TIMEOUT) -> str | None:
    """None once GET /health answers 200 on the run's port; else why not."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{ctx.port}/health"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return f"{server.what} exited with {server.proc.returncode} before serving:\n" + _tail(
                server.log.read_text(errors="replace"))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return f"{server.what}: no healthy answer on port {ctx.port} within {timeout:.0f} s:\n" + _tail(
        server.log.read_text(errors="replace"))


def start_server(ctx: FileContext, cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str | None:
    if ctx.server is not None:
        ctx.server.stop()
        ctx.server = None
    log = ctx.root / f"server-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    ctx.server = Server(proc=proc, log=log, what=what)
    error = wait_healthy(ctx, ctx.server)
    if error:
        ctx.server.stop()  # kept (stopped): later blocks report that the server is not running
    return error


def ensure_server(ctx: FileContext) -> str | None:
    """The document's server (the last server block) must still run; without one, the harness
    starts its own."""
    if ctx.server is not None and ctx.server.proc.poll() is None:
        return None
    if ctx.server is not None:
        return f"{ctx.server.what} is no longer running (exit {ctx.server.proc.returncode}):\n" + _tail(
            ctx.server.log.read_text(errors="replace"))
    binary = os.environ.get("ENGRAM_SERVER_BIN", str(VENV_BIN / "engram-server"))
    cmd = [binary, "serve", "--host", "127.0.0.1", "--port", str(ctx.port), "--grpc-port", str(ctx.grpc_port),
           "--data-dir", str(ctx.root / "data"), "--api-key", DOC_ROOT_KEY]
    return start_server(ctx, cmd, ctx.work, ctx.env(), "engram-server (started by the harness)")


# ---------------------------------------------------------------------------------------------
# shell and Python


def shell_script(block: Block, ctx: FileContext) -> str:
    text = substitute(block.text, ctx)
    if block.lang != "console":
        return text
    lines, cont = [], False
    for line in text.splitlines():
        if cont or line.lstrip().startswith("$ "):
            lines.append(line if cont else line.lstrip()[2:])
            cont = line.rstrip().endswith("\\")
    return "\n".join(lines) + "\n"


def run_shell(block: Block, ctx: FileContext) -> tuple[int, str]:
    script = ctx.work / f"l{block.line:04d}.sh"
    script.write_text(shell_script(block, ctx))
    if block.kind == "compile-only":
        return _run(["bash", "-n", str(script)], ctx.work, ctx.env(block), 30)
    rc, out = _run(["bash", "-euo", "pipefail", str(script)], ctx.cwd(block), ctx.env(block),
                   block.marker.timeout or BLOCK_TIMEOUT)
    return rc, _map_lines(out, re.escape(script.name) + r": line (?P<line>\d+)", 1, block.line + 1)


def run_python(block: Block, ctx: FileContext) -> tuple[int, str]:
    path = ctx.work / f"l{block.line:04d}.py"
    path.write_text(substitute(block.text, ctx))
    python = str(VENV_BIN / "python")
    if block.kind == "compile-only":
        cmd = [python, "-c", "import ast, sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec', "
               "flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)", str(path)]
    else:
        cmd = [python, "-c", PY_RUNNER, str(path)]
    rc, out = _run(cmd, ctx.cwd(block), ctx.env(block), block.marker.timeout or BLOCK_TIMEOUT)
    return rc, _map_lines(out, re.escape(path.name) + r'", line (?P<line>\d+)', 1, block.line + 1)


# ---------------------------------------------------------------------------------------------
# compiled languages: every block of the language is built together, at its first block


def _indent(text: str, prefix: str) -> str:
    return textwrap.indent(text, prefix, lambda line: bool(line.strip()))


def ts_source(block: Block, ctx: FileContext) -> tuple[str, int]:
    """(module text, line of the module where the block's first line is). Import lines go first;
    the block's other lines run in a `{ }` scope after a preamble that defines `client` (an
    EngramClient for ENGRAM_URL and ENGRAM_API_KEY) and `apiKey`; `client.close()` follows."""
    text = substitute(block.text, ctx)
    if re.search(r"^\s*export\b", text, re.M):
        return text, 1
    imports: list[str] = []
    body: list[str] = []
    in_import = False
    for line in text.splitlines():
        if in_import or re.match(r"import\s", line):
            imports.append(line)
            body.append("")  # the block keeps its line numbers
            complete = re.search(r"\bfrom\s*[\"']|^import\s+[\"']", line)
            in_import = not complete
        else:
            body.append(line)
    head = "\n".join(imports) + "\n" + TS_PREAMBLE
    return head + "\n".join(body) + TS_POSTAMBLE, head.count("\n") + 1


def _go_declared(text: str) -> list[str]:
    names: list[str] = []
    for line in text.splitlines():
        m = re.match(r"([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*:=", line) or re.match(r"var\s+([A-Za-z_]\w*)", line)
        if m:
            names.extend(n.strip() for n in m.group(1).split(",") if n.strip() != "_")
    return list(dict.fromkeys(names))


def go_source(block: Block, ctx: FileContext) -> tuple[str, int]:
    """A block with `package` is a program as it is. Any other runs inside
    `func run(ctx context.Context, client, admin *engram.Client, addr, key string) error`, in a
    `{ }` scope after `var err error`, with the packages the examples use imported (and marked
    used) and `_ = name` for each name its top level declares; main() connects `client` to
    ENGRAM_URL with ENGRAM_API_KEY and fails when run returns an error."""
    text = substitute(block.text, ctx)
    if re.search(r"^package\s", text, re.M):
        return text, 1
    uses = "".join(f"\t\t_ = {name}\n" for name in _go_declared(text))
    return GO_TEMPLATE_HEAD + _indent(text, "\t\t") + uses + GO_TEMPLATE_TAIL, GO_TEMPLATE_HEAD.count("\n") + 1


def rust_source(block: Block, ctx: FileContext) -> tuple[str, int]:
    """A block with `fn main` is a program as it is. Any other runs inside `#[tokio::main] async fn
    main() -> Result<(), Box<dyn Error>>`, in a `{ }` scope, with `use engram_client::*` and
    `client` (built from ENGRAM_URL and ENGRAM_API_KEY) and `other` (a clone) defined."""
    text = substitute(block.text, ctx)
    if re.search(r"\bfn\s+main\s*\(", text):
        return text, 1
    return RUST_TEMPLATE_HEAD + _indent(text, "        ") + RUST_TEMPLATE_TAIL, RUST_TEMPLATE_HEAD.count("\n") + 1


@dataclass
class Unit:
    block: Block
    name: str  # generated file's name, unique within the build
    path: Path
    first_line: int  # line of the generated file holding the block's first line
    artifact: Path | None = None  # what runs


def _attribute(units: list[Unit], output: str, rc: int, built: Callable[[Unit], bool],
               pattern: Callable[[Unit], str]) -> dict[int, str | None]:
    """Each unit's build error (None when it built), from the build output's lines naming it."""
    errors: dict[int, str | None] = {}
    for u in units:
        mine = [line for line in output.splitlines() if u.name in line]
        text = _map_lines("\n".join(mine), pattern(u), u.first_line, u.block.line + 1)
        if mine:
            errors[u.block.line] = text
        elif not built(u):
            errors[u.block.line] = "not built:\n" + _tail(output) if output.strip() else f"not built (exit {rc})"
        else:
            errors[u.block.line] = None
    return errors


def build_ts(blocks: list[Block], ctx: FileContext) -> dict[int, str | None]:
    tsc = REPO / "sdk-typescript" / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        return {b.line: f"{tsc} is missing: run `make setup`" for b in blocks}
    units = []
    for b in blocks:
        src, first = ts_source(b, ctx)
        name = f"l{b.line:04d}.mts"
        (ctx.project / name).write_text(src)
        units.append(Unit(b, name, ctx.project / name, first, ctx.project / f"l{b.line:04d}.mjs"))
    config = {
        "compilerOptions": {
            "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": True,
            "skipLibCheck": True, "types": ["node"],
            "typeRoots": [str(REPO / "sdk-typescript" / "node_modules" / "@types")],
        },
        "files": [u.name for u in units],
    }
    (ctx.project / "tsconfig.json").write_text(json.dumps(config, indent=2))
    rc, out = _run([str(tsc), "-p", "tsconfig.json", "--pretty", "false"], ctx.project, ctx.env(),
                   COMPILE_TIMEOUT["ts"])
    return _attribute(units, out, rc, lambda u: u.artifact is not None and u.artifact.exists(),
                      lambda u: re.escape(u.name) + r"\((?P<line>\d+),\d+\)")


def build_go(blocks: list[Block], ctx: FileContext) -> dict[int, str | None]:
    units = []
    for b in blocks:
        src, first = go_source(b, ctx)
        name = f"l{b.line:04d}"
        (ctx.project / name).mkdir(exist_ok=True)
        (ctx.project / name / "main.go").write_text(src)
        units.append(Unit(b, name, ctx.project / name / "main.go", first, ctx.project / "bin" / name))
    if not (ctx.project / "go.mod").exists():
        return {b.line: "no go.mod in the scratch project" for b in blocks}
    rc, out = _run(["go", "build", "-o", "bin/", *[f"./{u.name}" for u in units]], ctx.project, ctx.env(),
                   COMPILE_TIMEOUT["go"])
    return _attribute(units, out, rc, lambda u: u.artifact is not None and u.artifact.exists(),
                      lambda u: re.escape(u.name) + r"/main\.go:(?P<line>\d+)(:\d+)?")


def build_rust(blocks: list[Block], ctx: FileContext) -> dict[int, str | None]:
    target = Path(ctx.env()["CARGO_TARGET_DIR"])
    stem = re.sub(r"\W", "_", ctx.doc.path.stem)
    (ctx.project / "src" / "bin").mkdir(parents=True, exist_ok=True)
    (ctx.project / "Cargo.toml").write_text(RUST_CARGO_TOML.format(sdk=REPO / "sdk-rust"))
    shutil.copy(REPO / "sdk-rust" / "Cargo.lock", ctx.project / "Cargo.lock")
    units = []
    for b in blocks:
        src, first = rust_source(b, ctx)
        name = f"doctest_{stem}_l{b.line:04d}"
        (ctx.project / "src" / "bin" / f"{name}.rs").write_text(src)
        artifact = target / "debug" / name
        artifact.unlink(missing_ok=True)  # never run a binary left by an earlier run
        units.append(Unit(b, f"{name}.rs", ctx.project / "src" / "bin" / f"{name}.rs", first, artifact))
    rc, out = _run(["cargo", "build", "--offline", "--bins", "--keep-going", "--message-format=short"],
                   ctx.project, ctx.env(), COMPILE_TIMEOUT["rust"])
    return _attribute(units, out, rc, lambda u: u.artifact is not None and u.artifact.exists(),
                      lambda u: re.escape(u.name) + r":(?P<line>\d+)(:\d+)?")


BUILDERS = {"ts": build_ts, "go": build_go, "rust": build_rust}


def lang_family(lang: str) -> str:
    if lang in SHELL_LANGS:
        return "sh"
    if lang in PYTHON_LANGS:
        return "python"
    if lang in TS_LANGS:
        return "ts"
    if lang in GO_LANGS:
        return "go"
    if lang in RUST_LANGS:
        return "rust"
    return "shown"


def run_compiled(block: Block, ctx: FileContext) -> tuple[int, str]:
    family = lang_family(block.lang)
    if family not in ctx.compiled:
        todo = [b for b in ctx.doc.blocks if lang_family(b.lang) == family and b.kind in ("run", "compile-only")]
        start = time.monotonic()
        ctx.compiled[family] = BUILDERS[family](todo, ctx)
        if ctx.verbose:
            print(f"    (built {len(todo)} {family} block(s) in {time.monotonic() - start:.1f} s)", flush=True)
    error = ctx.compiled[family].get(block.line)
    if error:
        return 1, "build failed:\n" + error
    if block.kind == "compile-only":
        return 0, ""
    timeout = block.marker.timeout or BLOCK_TIMEOUT
    name = f"l{block.line:04d}"
    if family == "ts":
        return _run(["node", str(ctx.project / f"{name}.mjs")], ctx.cwd(block, "project"), ctx.env(block), timeout)
    if family == "go":
        return _run([str(ctx.project / "bin" / name)], ctx.cwd(block, "project"), ctx.env(block), timeout)
    stem = re.sub(r"\W", "_", ctx.doc.path.stem)
    binary = Path(ctx.env()["CARGO_TARGET_DIR"]) / "debug" / f"doctest_{stem}_{name}"
    return _run([str(binary)], ctx.cwd(block, "project"), ctx.env(block), timeout)


# ---------------------------------------------------------------------------------------------
# one document


def prepare(ctx: FileContext) -> None:
    for d in ("work", "project", "tmp", "data", "config", "share", "curl"):
        (ctx.root / d).mkdir(parents=True, exist_ok=True)
    # curl in a block fails on an HTTP error (and still prints the body): a request the server
    # refuses fails the block even when the document's curl has no --fail.
    (ctx.root / "curl" / ".curlrc").write_text("fail-with-body\nshow-error\n")
    families = {lang_family(b.lang) for b in ctx.doc.blocks if b.kind != "shown" and b.kind != "skip"}
    if "sh" in families and not (ctx.venv / "bin" / "python").exists():
        uv = VENV_BIN / "uv"
        cmd = ([str(uv), "venv", "-q", "--seed", "-p", str(VENV_BIN / "python"), str(ctx.venv)] if uv.exists()
               else [str(VENV_BIN / "python"), "-m", "venv", str(ctx.venv)])
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    if "ts" in families:
        (ctx.project / "package.json").write_text('{"name": "doctest-project", "private": true}\n')
    if "go" in families:
        subprocess.run(["go", "mod", "init", "doctest.example/project"], cwd=ctx.project, env=ctx.env(), check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)


def run_block(block: Block, ctx: FileContext) -> Result:
    kind = block.kind
    if kind == "shown":
        return Result(block, "shown")
    if kind == "skip":
        return Result(block, "skipped", detail=block.marker.reason)
    start = time.monotonic()
    family = lang_family(block.lang)
    if family == "shown":  # a language without a runner: reported by the parser already
        return Result(block, "unrun")
    if kind == "server":
        if family != "sh":
            return Result(block, "FAIL", detail="only a shell block can be a server")
        script = ctx.work / f"l{block.line:04d}.sh"
        script.write_text(shell_script(block, ctx))
        error = start_server(ctx, ["bash", "-euo", "pipefail", str(script)], ctx.cwd(block),
                             ctx.env(block, for_server=True), f"server block {block.where}")
        return Result(block, "FAIL" if error else "server", time.monotonic() - start, error or "")
    error = ensure_server(ctx)
    if error:
        return Result(block, "FAIL", time.monotonic() - start, error)
    if family == "sh":
        rc, out = run_shell(block, ctx)
    elif family == "python":
        rc, out = run_python(block, ctx)
    else:
        rc, out = run_compiled(block, ctx)
    seconds = time.monotonic() - start
    if block.marker.has("expect-fail"):
        if rc == 0:
            return Result(block, "FAIL", seconds, "marked expect-fail, but it succeeded:\n" + _tail(out))
        return Result(block, "ok", seconds, out)
    if rc != 0:
        return Result(block, "FAIL", seconds, f"exit {rc}:\n" + _tail(out))
    return Result(block, "compiled" if kind == "compile-only" else "ok", seconds, out)


def run_document(doc: Document, *, venv: Path | None = None, verbose: bool = False, keep: bool = False,
                 report: Callable[[Result], None] | None = None) -> list[Result]:
    """Runs the blocks of one document in a fresh scratch directory. `venv`: the Python virtual
    environment shell blocks get first on PATH (created when missing; one per run saves the
    documents' repeated `pip install`s their downloads), else a new one in the scratch directory."""
    root = Path(tempfile.mkdtemp(prefix="engram-doctest-"))
    ctx = FileContext(doc=doc, root=root, port=free_port(), grpc_port=free_port(), venv=venv or root / "venv",
                      verbose=verbose)
    results: list[Result] = []
    try:
        prepare(ctx)
        for block in doc.blocks:
            result = run_block(block, ctx)
            results.append(result)
            if report:
                report(result)
    finally:
        if ctx.server is not None:
            ctx.server.stop()
        if keep:
            print(f"    (scratch kept: {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return results

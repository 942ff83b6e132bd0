"""Static checks: what the documents name must exist.

* every `engram-server` command line (in a shell block, in inline code, or in
  `make serve ARGS="..."`) must parse with the server's own argument parser
  (`engram_server.cli.build_parser`, built from the Config OPTIONS table);
* every `engram` command line must resolve to a command of the CLI, with options that command
  (or the root) defines and values it accepts (parsed by the CLI's own click parser);
* every row of a table marked `cli-table` may name only commands and options the CLI has;
* every `ENGRAM_*` name in the document must be read by some code: the server's OPTIONS table
  (and `ENGRAM_CONFIG`), or a string in the sources of the server, the SDKs, their tests or the
  Makefiles.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.doctest.markdown import SHELL_LANGS, Document, Table

REPO = Path(__file__).resolve().parents[2]
ENV_RE = re.compile(r"\bENGRAM_[A-Z0-9_]*[A-Z0-9]\b")
SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")", "|&", ";;"})
ASSIGNMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Where the names a document may use are read: source and build files, never the documents.
ENV_SOURCE_DIRS = ("server/src", "sdk-python/src", "sdk-python/tests", "sdk-typescript/src", "sdk-typescript/test",
                   "sdk-typescript/examples", "sdk-go", "sdk-rust/src", "sdk-rust/tests", "sdk-rust/examples",
                   "conformance", "tests")
ENV_SOURCE_SUFFIXES = (".py", ".ts", ".go", ".rs", ".toml", ".sh", ".json", "Makefile")
PRUNE = frozenset({"node_modules", "target", "dist", "build", ".bin", "__pycache__", "gen", "_gen"})


@functools.cache
def known_env_names() -> frozenset[str]:
    from engram_server.config import OPTIONS

    names = {opt.env for opt in OPTIONS} | {"ENGRAM_CONFIG"}
    files = [REPO / "Makefile"]
    for top in ENV_SOURCE_DIRS:
        for root, dirs, filenames in os.walk(REPO / top):
            dirs[:] = [d for d in dirs if d not in PRUNE and not d.startswith(".")]
            files.extend(Path(root) / f for f in filenames if f.endswith(ENV_SOURCE_SUFFIXES))
    for f in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            names.update(ENV_RE.findall(f.read_text(encoding="utf-8")))
    return frozenset(names)


def check_env_names(doc: Document) -> Iterator[tuple[int, str]]:
    known = known_env_names()
    for m in ENV_RE.finditer(doc.text):
        if m.group() not in known:
            line = doc.text.count("\n", 0, m.start()) + 1
            yield line, f"{m.group()}: no code reads this variable (not in the server's OPTIONS, the SDKs or the CLI)"


# ---------------------------------------------------------------------------------------------
# command lines


def shell_lines(text: str, lang: str) -> Iterator[tuple[int, str]]:
    """(offset of the first physical line, logical line) of a shell block, continuations joined;
    for `console` blocks only the `$ ` lines."""
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines()):
        line = raw
        if lang == "console" and not buf:
            if not line.lstrip().startswith("$ "):
                continue
            line = line.lstrip()[2:]
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf.append(line.rstrip()[:-1])
            continue
        buf.append(line)
        yield start, " ".join(buf)
        buf = []
    if buf:
        yield start, " ".join(buf)


def simple_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line, leading NAME=value assignments and `exec` removed."""
    try:
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens = list(lex)
    except ValueError:
        return
    current: list[str] = []
    for tok in [*tokens, ";"]:
        if tok in SEPARATORS:
            while current and (ASSIGNMENT_RE.match(current[0]) or current[0] in ("exec", "env", "time", "command")):
                current.pop(0)
            if current:
                yield current
            current = []
        else:
            current.append(tok)


def _server_parser_error(args: list[str]) -> str | None:
    from engram_server.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as e:
        if e.code not in (0, None):
            last = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {e.code}"
            return last.removeprefix("engram-server: error: ")
    return None


@functools.cache
def _cli() -> Any:
    import typer.main
    from engram.cli import app

    return typer.main.get_command(app)


def _cli_error(args: list[str], partial: bool = False) -> str | None:
    """None when `engram ARGS` parses: every command exists, every option belongs to it (with
    `partial`, missing arguments are allowed: inline code may name a command without them)."""
    cmd = _cli()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ctx = cmd.make_context("engram", list(args))
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            while hasattr(cmd, "resolve_command") and rest:
                name, sub, rest = cmd.resolve_command(ctx, rest)
                if sub is None:
                    return f"no command {rest[0]!r}"
                ctx = sub.make_context(name, list(rest), parent=ctx)
                cmd = sub
                rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
    except Exception as e:  # click's (vendored by typer) UsageError, NoSuchOption, BadParameter...
        if type(e).__name__ == "NoArgsIsHelpError" or (partial and type(e).__name__ == "MissingParameter"):
            return None
        if type(e).__name__ == "Exit" and getattr(e, "exit_code", 1) == 0:  # `--help`, `--version`
            return None
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        return f"{type(e).__name__}: {message}".strip()
    except SystemExit:
        return None
    return None


def check_command(words: list[str], partial: bool = False) -> str | None:
    """The error of one simple command, when it is an engram, engram-server or `make serve` one."""
    if not words:
        return None
    name = os.path.basename(words[0])
    if name == "engram-server":
        if len(words) == 1:
            return None
        error = _server_parser_error(words[1:])
        return f"engram-server {shlex.join(words[1:])}: {error}" if error else None
    if name == "engram":
        if len(words) == 1:
            return None
        error = _cli_error(words[1:], partial)
        return f"engram {shlex.join(words[1:])}: {error}" if error else None
    if name == "make" and "serve" in words[1:]:
        for word in words[1:]:
            if word.startswith("ARGS="):
                try:
                    args = shlex.split(word[5:])
                except ValueError:
                    return f"make serve {word}: unreadable ARGS"
                error = _server_parser_error(["serve", *args])
                if error:
                    return f"make serve ARGS={shlex.quote(word[5:])}: engram-server serve {error}"
    return None


def check_commands(doc: Document) -> Iterator[tuple[int, str]]:
    for block in doc.blocks:
        if block.lang not in SHELL_LANGS:
            continue
        for offset, line in shell_lines(block.text, block.lang):
            for words in simple_commands(line):
                error = check_command(words)
                if error:
                    yield block.line + 1 + offset, error
    for line_no, span in doc.inline_code:
        for words in simple_commands(span):
            if os.path.basename(words[0]) in ("engram", "engram-server", "make"):
                error = check_command(words, partial=True)
                if error:
                    yield line_no, error


# ---------------------------------------------------------------------------------------------
# cli-table


def _options(command: Any) -> set[str]:
    opts: set[str] = {"--help", "-h"}
    for p in command.params:
        opts.update(getattr(p, "opts", []))
        opts.update(getattr(p, "secondary_opts", []))
    return opts


def _resolve(words: list[str]) -> Any | None:
    """The CLI command named by the leading words (`keys create NAME` -> keys create)."""
    cmd = _cli()
    found = None
    for word in words:
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            break
        cmd = found = sub
    return found


def check_table(table: Table) -> Iterator[tuple[int, str]]:
    """A cli-table row names commands (code spans starting with a command) and options (words
    starting with '-'); each option must belong to a command of its row, or to the root when the
    row names no command."""
    root = _cli()
    for line, spans in table.rows:
        commands = []
        flags: list[str] = []
        for i, span in enumerate(spans):
            words = span.replace("[", " ").replace("]", " ").split()
            if not words:
                continue
            if not words[0].startswith("-"):
                cmd = _resolve(words)
                if cmd is not None:
                    commands.append(cmd)
                elif i == 0 and re.fullmatch(r"[a-z][a-z-]*", words[0]):
                    yield line, f"cli-table: {words[0]!r} is not an engram command"
            for word in words:
                flags.extend(f.split("=")[0] for f in word.split("/") if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", f))
        allowed = set().union(*(_options(c) for c in commands)) if commands else _options(root)
        for flag in flags:
            if flag not in allowed:
                where = " or ".join(f"engram {c.name}" for c in commands) if commands else "engram"
                yield line, f"cli-table: {where} has no option {flag}"


def check(doc: Document) -> list[tuple[int, str]]:
    problems = [*check_env_names(doc), *check_commands(doc)]
    for table in doc.tables:
        problems.extend(check_table(table))
    return sorted(set(problems))

"""Reading the documents: fenced code blocks, their markers, marked tables and inline code.

The Markdown is parsed with markdown-it-py (CommonMark plus GFM tables), never with regular
expressions, so that fences inside lists, tildes, longer backtick runs and HTML comments are
read the way a renderer reads them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})
PYTHON_LANGS = frozenset({"python", "py", "python3"})
TS_LANGS = frozenset({"ts", "typescript", "js", "javascript"})
GO_LANGS = frozenset({"go"})
RUST_LANGS = frozenset({"rust", "rs"})
RUN_LANGS = SHELL_LANGS | PYTHON_LANGS | TS_LANGS | GO_LANGS | RUST_LANGS
# Blocks that show something (output, a file's contents, a tree) rather than something to run.
SHOWN_LANGS = frozenset({"", "text", "json", "jsonc", "jsonl", "toml", "yaml", "yml", "ini", "output", "diff"})

# What a marker may say. Words: what to do with the next block; key=value: how.
ACTIONS = frozenset({"skip", "server", "expect-fail", "compile-only", "cli-table"})
KEYS = frozenset({"reason", "cwd", "timeout", "env"})
CWDS = frozenset({"work", "repo", "project"})
NEEDS_REASON = frozenset({"skip", "compile-only"})

MARKER_RE = re.compile(r"^\s*<!--\s*doctest:(?P<body>.*?)-->\s*$", re.DOTALL)


class DocError(Exception):
    """A problem with a document itself (a bad marker), reported with its file and line."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


@dataclass
class Marker:
    """`<!-- doctest: ACTION key="value" ... -->` before a block."""

    line: int
    actions: frozenset[str] = frozenset()
    reason: str = ""
    cwd: str = "work"
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)

    def has(self, action: str) -> bool:
        return action in self.actions


@dataclass
class Block:
    """One fenced code block."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # first word of the info string, lower case
    text: str
    marker: Marker

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def kind(self) -> str:
        """run, skip, compile-only, server or shown."""
        if self.lang in SHOWN_LANGS:
            return "shown"
        for action in ("skip", "server", "compile-only"):
            if self.marker.has(action):
                return action
        return "run"


@dataclass
class Table:
    """A table marked `cli-table`: each row's code spans, with the row's line."""

    path: Path
    line: int
    rows: list[tuple[int, list[str]]]


@dataclass
class Document:
    path: Path
    text: str
    blocks: list[Block]
    tables: list[Table]
    inline_code: list[tuple[int, str]]  # (line, code span)
    errors: list[DocError]


def parse_marker(path: Path, line: int, body: str) -> Marker:
    try:
        words = shlex.split(body)
    except ValueError as e:
        raise DocError(path, line, f"unreadable doctest marker ({e}): {body.strip()!r}") from None
    marker = Marker(line=line)
    actions: set[str] = set()
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            if word not in ACTIONS:
                raise DocError(path, line, f"unknown doctest action {word!r} (known: {', '.join(sorted(ACTIONS))})")
            actions.add(word)
        elif key == "reason":
            marker.reason = value.strip()
        elif key == "cwd":
            if value not in CWDS:
                raise DocError(path, line, f"cwd must be one of {', '.join(sorted(CWDS))}, not {value!r}")
            marker.cwd = value
        elif key == "timeout":
            try:
                marker.timeout = float(value)
            except ValueError:
                raise DocError(path, line, f"timeout must be a number of seconds, not {value!r}") from None
        elif key == "env":
            name, eq2, val = value.partition("=")
            if not eq2 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise DocError(path, line, f"env takes NAME=VALUE, not {value!r}")
            marker.env[name] = val
        else:
            raise DocError(path, line, f"unknown doctest attribute {key!r} (known: {', '.join(sorted(KEYS))})")
    marker.actions = frozenset(actions)
    for action in sorted(actions & NEEDS_REASON):
        if not marker.reason:
            raise DocError(path, line, f'"{action}" needs a reason: <!-- doctest: {action} reason="why" -->')
    if len(actions - {"expect-fail"}) > 1:
        raise DocError(path, line, f"at most one of {', '.join(sorted(ACTIONS - {'expect-fail'}))} per marker")
    return marker


def _code_spans(inline: Token) -> list[str]:
    return [child.content for child in inline.children or [] if child.type == "code_inline"]


def _table_rows(tokens: list[Token], start: int) -> tuple[list[tuple[int, list[str]]], int]:
    """The rows of the table opening at tokens[start]: (line, code spans of the row)."""
    rows: list[tuple[int, list[str]]] = []
    i = start + 1
    current: list[str] | None = None
    line = 0
    while i < len(tokens) and tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            current, line = [], (tok.map[0] + 1 if tok.map else 0)
        elif tok.type == "inline" and current is not None:
            current.extend(_code_spans(tok))
        elif tok.type == "tr_close" and current is not None:
            rows.append((line, current))
            current = None
        i += 1
    return rows, i


def parse(path: Path, display: Path | None = None) -> Document:
    """Every fenced block of a Markdown file with its marker; errors for stray or bad markers."""
    text = path.read_text(encoding="utf-8")
    shown = display or path
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    doc = Document(path=shown, text=text, blocks=[], tables=[], inline_code=[], errors=[])
    pending: Marker | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        line = tok.map[0] + 1 if tok.map else 0
        if tok.type == "html_block" and "doctest:" in tok.content:
            if pending is not None:
                doc.errors.append(DocError(shown, pending.line, "doctest marker not followed by a code block"))
            m = MARKER_RE.match(tok.content)
            if not m:
                doc.errors.append(DocError(shown, line, "a doctest marker is one HTML comment: <!-- doctest: ... -->"))
                pending = None
            else:
                try:
                    pending = parse_marker(shown, line, m.group("body"))
                except DocError as e:
                    doc.errors.append(e)
                    pending = None
        elif tok.type == "fence":
            lang = tok.info.strip().split()[0].lower() if tok.info.strip() else ""
            marker = pending or Marker(line=line)
            if marker.has("cli-table"):
                doc.errors.append(DocError(shown, marker.line, "cli-table marks a table, not a code block"))
            doc.blocks.append(Block(path=shown, line=line, lang=lang, text=tok.content, marker=marker))
            if lang not in RUN_LANGS and lang not in SHOWN_LANGS:
                doc.errors.append(
                    DocError(shown, line, f"no runner for ```{lang} blocks: mark it skip (with a reason) or teach "
                             "tools/doctest to run it")
                )
            elif lang in SHOWN_LANGS and pending is not None:
                doc.errors.append(DocError(shown, marker.line, f"a ```{lang or '(no language)'} block is never run: "
                                           "drop its doctest marker"))
            pending = None
        elif tok.type == "table_open":
            rows, end = _table_rows(tokens, i)
            if pending is not None:
                if pending.has("cli-table"):
                    doc.tables.append(Table(path=shown, line=line, rows=rows))
                else:
                    doc.errors.append(DocError(shown, pending.line, "only cli-table may mark a table"))
            for row_line, spans in rows:
                doc.inline_code.extend((row_line, span) for span in spans)
            pending = None
            i = end
        elif tok.type == "inline":
            if pending is not None:
                doc.errors.append(DocError(shown, pending.line, "doctest marker not followed by a code block"))
                pending = None
            doc.inline_code.extend((line, span) for span in _code_spans(tok))
            if any(c.type == "html_inline" and "doctest:" in c.content for c in tok.children or []):
                doc.errors.append(DocError(shown, line, "a doctest marker must be a line of its own, before a block"))
        i += 1
    if pending is not None:
        doc.errors.append(DocError(shown, pending.line, "doctest marker not followed by a code block"))
    return doc

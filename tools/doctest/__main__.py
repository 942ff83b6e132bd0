"""python -m tools.doctest [-v] [--keep] [--check-only] [FILE.md ...]: run the documents' code blocks."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tools.doctest import checks
from tools.doctest.markdown import parse
from tools.doctest.runner import REPO, Result, run_document

DEFAULT_FILES = (
    "README.md", "docs/quickstart.md", "docs/sdk/*.md", "docs/cli.md", "docs/mcp.md", "docs/integrations/*.md",
    "docs/operations/cluster.md",
)


@dataclass
class Tally:
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)
    per_file: list[str] = field(default_factory=list)


def default_files() -> list[Path]:
    files: list[Path] = []
    for pattern in DEFAULT_FILES:
        files.extend(sorted(REPO.glob(pattern)))
    return files


def _display(path: Path) -> Path:
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.rstrip().splitlines())


def _ran(counts: Counter[str]) -> int:
    return counts["ok"] + counts["server"] + counts["FAIL"]


def run_file(path: Path, args: argparse.Namespace, venv: Path, tally: Tally) -> None:
    start = time.monotonic()
    doc = parse(path, _display(path))
    print(f"== {doc.path}", flush=True)
    problems = [(e.line, e.message) for e in doc.errors] + checks.check(doc)
    for line, message in problems:
        tally.failures.append(f"{doc.path}:{line}: {message}")
        print(f"  FAIL     {doc.path}:{line}: {message}", flush=True)

    def report(r: Result) -> None:
        if r.status == "shown":
            return
        head = f"  {r.status:<8} {r.block.where:<28} {r.block.lang or '-':<6}"
        print(f"{head} ({r.detail})" if r.status == "skipped" else f"{head} {r.seconds:6.1f} s", flush=True)
        if r.status == "FAIL":
            print("    block:\n" + _indent(r.block.text) + "\n    output:\n" + _indent(r.detail), flush=True)
        elif args.verbose and r.status != "skipped" and r.detail.strip():
            print(_indent(r.detail), flush=True)

    if args.check_only:
        results = [Result(b, "shown" if b.kind == "shown" else "unrun") for b in doc.blocks]
    else:
        results = run_document(doc, venv=venv, verbose=args.verbose, keep=args.keep, report=report)
    counts = Counter(r.status for r in results)
    tally.totals.update(counts)
    for r in results:
        if r.status == "FAIL":
            tally.failures.append(f"{r.block.where}: {r.block.lang} block failed")
        elif r.status == "skipped":
            tally.skipped.append(f"{r.block.where} ({r.block.lang}): {r.detail}")
    summary = (f"{doc.path}: {_ran(counts)} run, {counts['compiled']} compile-only, {counts['skipped']} skipped, "
            f"{counts['shown']} shown; {counts['FAIL'] + len(problems)} failed ({time.monotonic() - start:.1f} s)")
    tally.per_file.append(summary)
    print(f"  {summary}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.doctest", description=__doc__)
    parser.add_argument("files", nargs="*", type=Path, help="Markdown files (default: the user documentation)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every block's output")
    parser.add_argument("--keep", action="store_true", help="keep each file's scratch directory")
    parser.add_argument("--check-only", action="store_true", help="parse and run the static checks only")
    args = parser.parse_args(argv)
    files = args.files or default_files()
    started = time.monotonic()
    tally = Tally()
    # One Python virtual environment for the whole run: the documents' `pip install`s share it.
    run_dir = Path(tempfile.mkdtemp(prefix="engram-doctest-run-"))
    try:
        for path in files:
            run_file(path, args, run_dir / "venv", tally)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)

    print("\nFiles:")
    for line in tally.per_file:
        print(f"  {line}")
    if tally.skipped:
        print("Skipped blocks:")
        for s in tally.skipped:
            print(f"  {s}")
    if tally.failures:
        print("Failures:")
        for f in tally.failures:
            print(f"  {f}")
    t = tally.totals
    summary = (f"doctest: {len(files)} files, {_ran(t)} blocks run, {t['compiled']} compile-only, "
               f"{t['skipped']} skipped, {t['shown']} shown; {len(tally.failures)} failed "
               f"({time.monotonic() - started:.0f} s)")
    print(f"{summary}: FAILED" if tally.failures else summary, flush=True)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())

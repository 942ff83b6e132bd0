"""The doc-test harness (tools/doctest) bites: run on the fixture documents in fixtures/doctest/.

A quick start whose root key breaks the server's 16-character rule fails; a flag, a transport, a
command option or a variable that does not exist fails; blocks that work pass; a skip without a
reason, an unknown marker, a block in a language without a runner and a stray marker are errors.
The harness's run of the real documents is `make doctest` (a step of `make test`).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from tools.doctest import __main__ as doctest_main
from tools.doctest import checks
from tools.doctest.markdown import parse
from tools.doctest.runner import Result, run_document

FIXTURES = Path(__file__).parent / "fixtures" / "doctest"

pytestmark = pytest.mark.timeout(300)


def _run(name: str, tmp_path: Path) -> tuple[dict[int, Result], list[tuple[int, str]]]:
    doc = parse(FIXTURES / name)
    problems = [(e.line, e.message) for e in doc.errors] + checks.check(doc)
    results = run_document(doc, venv=tmp_path / "venv")
    return {r.block.line: r for r in results}, problems


def _line(name: str, text: str) -> int:
    """The line of the fence that opens the block containing `text`."""
    lines = (FIXTURES / name).read_text().splitlines()
    hit = next(i for i, line in enumerate(lines) if text in line)
    return next(i + 1 for i in range(hit, -1, -1) if lines[i].startswith("```"))


def _main(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = doctest_main.main(list(args))
    return rc, out.getvalue()


def test_a_root_key_under_16_characters_fails(tmp_path: Path) -> None:
    results, problems = _run("short_key.md", tmp_path)
    assert problems == []
    server = results[_line("short_key.md", "ENGRAM_API_KEY=0123456789")]
    assert server.status == "FAIL"
    assert "at least 16 characters" in server.detail
    # what follows reports that the document's server is not running
    after = results[_line("short_key.md", "curl -s")]
    assert after.status == "FAIL" and "no longer running" in after.detail


def test_a_flag_transport_option_or_variable_that_does_not_exist_fails(tmp_path: Path) -> None:
    name = "no_such_transport.md"
    results, problems = _run(name, tmp_path)
    messages = "\n".join(f"{line}: {m}" for line, m in problems)
    flag_line = _line(name, "--http3-port") + 1
    assert f"{flag_line}: engram-server serve --http3-port 4433: " in messages
    assert "unrecognized arguments: --http3-port" in messages
    assert "No such option: --tagz" in messages
    assert "ENGRAM_WEBSOCKET_PORT: no code reads this variable" in messages
    assert "cli-table: engram recall has no option --rerank" in messages
    assert "cli-table: 'summarize' is not an engram command" in messages
    assert "has no option --top-k" not in messages
    # and at run time: the CLI and the Python SDK refuse the transport, so the blocks fail
    cli = results[_line(name, "--transport websocket")]
    assert cli.status == "FAIL" and "--transport must be rest or grpc" in cli.detail
    py = results[_line(name, "ws://localhost")]
    assert py.status == "FAIL" and "unsupported URL scheme 'ws'" in py.detail
    assert "[doc line" in py.detail  # tracebacks name the document's line


def test_blocks_that_work_pass(tmp_path: Path) -> None:
    name = "passing.md"
    results, problems = _run(name, tmp_path)
    assert problems == []
    by_status = {line: r.status for line, r in results.items()}
    assert by_status == {
        _line(name, "curl -s http://localhost:3300/health"): "ok",
        _line(name, "import engram"): "ok",
        _line(name, "get tea --json"): "ok",
        _line(name, "no-such-memory"): "ok",  # expect-fail, and it failed
        _line(name, "ssh prod"): "skipped",
        _line(name, '"shown"'): "shown",
    }, {line: (r.status, r.detail) for line, r in results.items()}
    assert results[_line(name, "ssh prod")].detail == "shows a command for another machine"


def test_main_reports_skips_and_the_summary(tmp_path: Path) -> None:
    rc, out = _main(str(FIXTURES / "passing.md"))
    assert rc == 0, out
    assert "shows a command for another machine" in out
    assert out.rstrip().splitlines()[-1].startswith("doctest: 1 files, 4 blocks run, 0 compile-only, 1 skipped, ")
    rc, out = _main(str(FIXTURES / "short_key.md"))
    assert rc == 1 and out.rstrip().endswith(": FAILED"), out
    assert "ENGRAM_API_KEY=0123456789 engram-server serve" in out  # the block's text is shown


def test_a_skip_without_a_reason_is_an_error() -> None:
    doc = parse(FIXTURES / "skip_without_reason.md")
    assert [e.message for e in doc.errors] == ['"skip" needs a reason: <!-- doctest: skip reason="why" -->']
    rc, out = _main("--check-only", str(FIXTURES / "skip_without_reason.md"))
    assert rc == 1 and "needs a reason" in out


def test_bad_markers_are_errors() -> None:
    doc = parse(FIXTURES / "bad_markers.md")
    messages = [e.message for e in doc.errors]
    assert any("unknown doctest action 'shout'" in m for m in messages), messages
    assert any("no runner for ```ruby blocks" in m for m in messages), messages
    assert any("doctest marker not followed by a code block" in m for m in messages), messages
    assert len(messages) == 3, messages


def test_expect_fail_that_succeeds_fails(tmp_path: Path) -> None:
    doc = parse(FIXTURES / "bad_markers.md")
    doc.blocks = doc.blocks[:1]  # `true`, marked expect-fail
    [result] = run_document(doc, venv=tmp_path / "venv")
    assert result.status == "FAIL" and "marked expect-fail, but it succeeded" in result.detail


def test_a_checkout_under_tmp_keeps_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI may clone into /tmp/: the checkout's path must not be taken for a scratch path.
    from tools.doctest import runner

    monkeypatch.setattr(runner, "REPO", Path("/tmp/clone"))
    md = tmp_path / "x.md"
    md.write_text("```sh\necho\n```\n")
    doc = parse(md)
    ctx = runner.FileContext(doc=doc, root=tmp_path, port=1, grpc_port=2, venv=tmp_path)
    out = runner.substitute("ls /path/to/engram/sdk-go /tmp/out.txt", ctx)
    assert out == f"ls /tmp/clone/sdk-go {ctx.tmp}/out.txt"

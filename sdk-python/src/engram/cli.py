"""The ``engram`` command line: talk to an Engram server from a shell.

Connection settings come from flags, else the environment (``ENGRAM_URL``, ``ENGRAM_API_KEY``,
``ENGRAM_AGENT_ID``, ``ENGRAM_TRANSPORT``), else the config file (``--config``,
``ENGRAM_CONFIG``, or ``~/.config/engram/client.toml``), else the defaults.

Exit codes: 0 success; 1 server or other error; 2 usage error (bad flags or arguments, and
INVALID_ARGUMENT from the server); 3 not found; 4 authentication or permission refused;
5 server unreachable or unavailable (UNAVAILABLE, DEADLINE_EXCEEDED). A command whose optional
dependency is not installed (``engram mcp`` without the ``mcp`` extra) prints the ``pip install``
command that adds it and exits with 1.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import betterproto2
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engram import _convert
from engram._config import Retry, Timeout
from engram._gen.engram import v1 as pb
from engram._sync.client import Client
from engram._version import __version__
from engram.errors import (
    DeadlineExceeded,
    EngramError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_UNAVAILABLE = 5

DISTRIBUTION = "engram-memory-client"
"""The name ``pip install`` knows this package by (see pyproject.toml)."""

OPTIONAL_DEPENDENCIES: dict[str, str] = {"mcp": "mcp", "google": "grpc-details"}
"""Top-level module → the extra of pyproject.toml ``[project.optional-dependencies]`` that
installs it."""

app = typer.Typer(
    name="engram",
    help="Store and recall the long-term memories of AI agents on an Engram server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
agents_app = typer.Typer(help="Inspect and erase agents.", no_args_is_help=False)
keys_app = typer.Typer(help="Create, list and revoke API keys (admin key needed).", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
cluster_app = typer.Typer(help="A cluster's nodes and shards; drain a node (admin key needed).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(cluster_app, name="cluster")

out = Console(soft_wrap=True)
err = Console(stderr=True)


# --- settings -------------------------------------------------------------------------------


def default_config_path() -> Path:
    """``$ENGRAM_CONFIG``, else ``$XDG_CONFIG_HOME/engram/client.toml`` (``~/.config/...``)."""
    if os.environ.get("ENGRAM_CONFIG"):
        return Path(os.environ["ENGRAM_CONFIG"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "engram" / "client.toml"


@dataclass
class Settings:
    """Resolved connection settings."""

    url: str | None = None
    api_key: str | None = None
    agent_id: str | None = None
    transport: str | None = None
    timeout: float = 30.0

    def client(self) -> Client:
        transport = self.transport if self.transport in ("rest", "grpc") else None
        return Client(
            self.url, api_key=self.api_key, transport=transport,  # type: ignore[arg-type]
            timeout=Timeout(self.timeout, connect=min(self.timeout, 5.0)), retry=Retry(attempts=3),
        )

    def agent(self, value: str | None) -> str:
        agent = value or self.agent_id
        if not agent:
            usage_error("no agent: pass --agent, set ENGRAM_AGENT_ID or agent_id in the config file")
        return agent


def load_settings(
    config: Path | None, url: str | None, api_key: str | None, agent: str | None,
    transport: str | None, timeout: float | None,
) -> Settings:
    path = config or default_config_path()
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            usage_error(f"cannot read config file {path}: {exc}")
    elif config is not None:
        usage_error(f"config file {config} does not exist")
    env = os.environ
    return Settings(
        url=url or env.get("ENGRAM_URL") or data.get("url"),
        api_key=api_key or env.get("ENGRAM_API_KEY") or data.get("api_key"),
        agent_id=agent or env.get("ENGRAM_AGENT_ID") or data.get("agent_id"),
        transport=transport or env.get("ENGRAM_TRANSPORT") or data.get("transport"),
        timeout=float(timeout or env.get("ENGRAM_TIMEOUT") or data.get("timeout") or 30.0),
    )


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def usage_error(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(EXIT_USAGE)


def missing_extra(extra: str, what: str, exc: ImportError) -> NoReturn:
    """Report an optional dependency that is not installed, with the command that adds it."""
    module = (exc.name or extra).split(".")[0]
    err.print("[red]error:[/red] ", end="")
    err.print(
        f"{what} needs the optional dependency {module!r}, which is not installed. Install it with:\n\n"
        f"    pip install '{DISTRIBUTION}[{extra}]'\n\n"
        f"(from a checkout of the Engram repository: pip install './sdk-python[{extra}]')",
        markup=False, highlight=False, soft_wrap=True,
    )
    raise typer.Exit(EXIT_ERROR)


def exit_code(exc: EngramError) -> int:
    """The exit code for a server error."""
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, (Unauthenticated, PermissionDenied)):
        return EXIT_AUTH
    if isinstance(exc, (Unavailable, DeadlineExceeded)):
        return EXIT_UNAVAILABLE
    if isinstance(exc, InvalidArgument):
        return EXIT_USAGE
    return EXIT_ERROR


def _print_version(value: bool) -> None:
    if value:
        out.print(f"engram {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        "--url", "-u", help="Server URL: host:port or http(s)://host:port (REST), grpc(s)://host:port "
        "(gRPC). Env ENGRAM_URL. Default http://127.0.0.1:3300.")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", "-k", help="API key. Env ENGRAM_API_KEY.", show_default=False)] = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", "-a", help="Agent id for memory commands. Env ENGRAM_AGENT_ID.")] = None,
    transport: Annotated[str | None, typer.Option(
        "--transport", help="rest or grpc (default: from the URL scheme). Env ENGRAM_TRANSPORT.")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Seconds per call (default 30). Env ENGRAM_TIMEOUT.")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Config file (TOML: url, api_key, agent_id, transport, timeout). "
        "Env ENGRAM_CONFIG. Default ~/.config/engram/client.toml.")] = None,
    version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    if transport not in (None, "rest", "grpc"):
        usage_error(f"--transport must be rest or grpc, not {transport!r}")
    ctx.obj = load_settings(config, url, api_key, agent, transport, timeout)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object) for scripts.")]
AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="Agent id (overrides the global one).")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")]


# --- output ---------------------------------------------------------------------------------


def as_json(message: betterproto2.Message) -> dict[str, Any]:
    return _convert.to_json_dict(message)


def print_json(value: Any) -> None:
    if isinstance(value, betterproto2.Message):
        value = as_json(value)
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _short(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _type(value: pb.MemoryType) -> str:
    return value.name.lower() if value.value else "episodic"


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def memory_table(memories: list[Any], *, title: str | None = None, scores: bool = False) -> Table:
    table = Table(title=title, show_lines=False)
    if scores:
        table.add_column("score", justify="right")
    table.add_column("id", overflow="fold")
    table.add_column("content")
    table.add_column("type")
    table.add_column("imp.", justify="right")
    table.add_column("tags")
    table.add_column("created")
    for m in memories:
        row = [m.id, _short(m.content), _type(m.memory_type), f"{m.importance:.2f}", ", ".join(m.tags),
               _time(m.created_at)]
        if scores:
            row.insert(0, f"{m.score:.3f}")
        table.add_row(*row)
    return table


def memory_detail(m: pb.Memory) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in as_json(m).items():
        if key == "metadata":
            value = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        table.add_row(key, str(value))
    return table


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        usage_error(f"--metadata is not JSON: {exc}")
    if not isinstance(value, dict):
        usage_error("--metadata must be a JSON object")
    return value


def _filter(
    tags: list[str] | None = None, tags_all: list[str] | None = None, types: list[str] | None = None,
    session: str | None = None, ids: list[str] | None = None, min_importance: float | None = None,
) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if tags:
        f["tags_any"] = tags
    if tags_all:
        f["tags_all"] = tags_all
    if types:
        f["memory_types"] = types
    if session:
        f["session_id"] = session
    if ids:
        f["ids"] = ids
    if min_importance is not None:
        f["min_importance"] = min_importance
    return f


# --- memory commands ------------------------------------------------------------------------


@app.command()
def store(
    ctx: typer.Context,
    content: Annotated[str, typer.Argument(help="The text to remember; - reads standard input.")],
    agent: AgentOpt = None,
    memory_type: Annotated[
        str | None, typer.Option("--type", help="episodic, semantic, procedural or working.")
    ] = None,
    importance: Annotated[float | None, typer.Option(help="0 to 1 (server default 0.5).")] = None,
    tag: TagOpt = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object.")] = None,
    session: Annotated[str, typer.Option(help="Session id.")] = "",
    ttl: Annotated[int, typer.Option(help="Seconds until the memory expires.")] = 0,
    id: Annotated[str, typer.Option("--id", help="Client-chosen id (makes retries safe).")] = "",
    key: Annotated[str, typer.Option(
        "--key", help="Upsert key: replaces the agent's memory with this key (exclusive with --id).")] = "",
    duplicate_policy: Annotated[str | None, typer.Option(
        "--duplicate-policy", help="off, exact or near: what to do with a duplicate of a memory the agent "
        "holds (default: the server's, exact).")] = None,
    duplicate_threshold: Annotated[float | None, typer.Option(
        "--duplicate-threshold", help="Cosine similarity from which near merges (0.5 to 1; server default "
        "0.95).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Store one memory; prints what happened: stored, merged into a duplicate, replaced by key, or
    unchanged."""
    s = settings(ctx)
    if duplicate_policy is not None and duplicate_policy.lower() not in ("off", "exact", "near"):
        usage_error(f"--duplicate-policy must be off, exact or near, not {duplicate_policy!r}")
    text = sys.stdin.read() if content == "-" else content
    with s.client() as client:
        r = client.store(
            s.agent(agent), text, memory_type=memory_type, importance=importance, tags=tag or (),
            metadata=_metadata(metadata), session_id=session, ttl_seconds=ttl, id=id, key=key,
            duplicate_policy=duplicate_policy, duplicate_threshold=duplicate_threshold,
        )
    if json_:
        print_json(r)
    else:
        out.print(store_outcome(r), highlight=False)


def store_outcome(r: pb.StoreMemoryResponse) -> str:
    """One line saying what a store did: ``stored ID``, ``merged into ID (version 2)``, ..."""
    m = r.memory or pb.Memory()
    if r.outcome == pb.StoreOutcome.MERGED:
        return f"merged into {m.id} (a duplicate; version {m.version})"
    if r.outcome == pb.StoreOutcome.REPLACED:
        return f"replaced {m.id} (key {m.key}; version {m.version})"
    if r.outcome == pb.StoreOutcome.UNCHANGED or not r.created:
        return f"unchanged {m.id} (already stored)"
    return f"stored {m.id}"


@app.command()
def recall(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to recall.")],
    agent: AgentOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-n", help="How many results.")] = 10,
    mode: Annotated[str | None, typer.Option(help="hybrid, vector or keyword.")] = None,
    tag: TagOpt = None,
    memory_type: Annotated[list[str] | None, typer.Option("--type", help="Only these types.")] = None,
    min_score: Annotated[float, typer.Option(help="Drop results below this score.")] = 0.0,
    explain: Annotated[bool, typer.Option(help="Include score explanations.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Find the memories most relevant to a query."""
    s = settings(ctx)
    with s.client() as client:
        r = client.recall(
            s.agent(agent), query, top_k=top_k, mode=mode, filter=_filter(tag, types=memory_type),
            min_score=min_score, explain=explain,
        )
    if json_:
        print_json(r)
        return
    out.print(memory_table(list(r.memories), scores=True,
                           title=f"{len(r.memories)} of {r.total_found} found in {r.took_ms:.1f} ms"))


@app.command()
def get(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="Memory id.")],
    agent: AgentOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show one memory."""
    s = settings(ctx)
    with s.client() as client:
        r = client.get(id, agent_id=agent or s.agent_id or "")
    if json_:
        print_json(r.memory or pb.Memory())
    elif r.memory:
        out.print(memory_detail(r.memory))


@app.command()
def update(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="Memory id.")],
    agent: AgentOpt = None,
    content: Annotated[str | None, typer.Option(help="New text.")] = None,
    memory_type: Annotated[str | None, typer.Option("--type", help="New type.")] = None,
    importance: Annotated[float | None, typer.Option(help="New importance.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="New tags (replace the old).")] = None,
    clear_tags: Annotated[bool, typer.Option(help="Remove every tag.")] = False,
    metadata: Annotated[str | None, typer.Option(help="New metadata (JSON object).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Change fields of a memory (the old version is kept in its history)."""
    s = settings(ctx)
    tags = [] if clear_tags else tag
    if content is None and memory_type is None and importance is None and tags is None and metadata is None:
        usage_error("nothing to update: pass --content, --type, --importance, --tag or --metadata")
    with s.client() as client:
        r = client.update(
            id, agent_id=agent or s.agent_id or "", content=content, memory_type=memory_type,
            importance=importance, tags=tags, metadata=_metadata(metadata),
        )
    if json_:
        print_json(r)
    else:
        out.print(f"updated {id} (version {r.memory.version if r.memory else '?'})")


@app.command()
def delete(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="Memory id.")],
    agent: AgentOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Delete one memory."""
    s = settings(ctx)
    with s.client() as client:
        r = client.delete(id, agent_id=agent or s.agent_id or "")
    if json_:
        print_json(r)
    else:
        out.print(f"deleted {r.id}")


@app.command("list")
def list_(
    ctx: typer.Context,
    agent: AgentOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Most memories to show (0: all).")] = 20,
    tag: TagOpt = None,
    memory_type: Annotated[list[str] | None, typer.Option("--type", help="Only these types.")] = None,
    order_by: Annotated[str, typer.Option(help="e.g. 'created_at desc', 'importance desc'.")] = "",
    json_: JsonOpt = False,
) -> None:
    """List an agent's memories, newest first."""
    s = settings(ctx)
    agent_id = s.agent(agent)
    memories: list[pb.Memory] = []
    with s.client() as client:
        page = client.list(agent_id, page_size=min(limit, 1000) if limit else 0,
                           filter=_filter(tag, types=memory_type), order_by=order_by)
        total = page.total_size
        memories.extend(page.memories)
        token = page.next_page_token
        while token and (not limit or len(memories) < limit):
            page = client.list(agent_id, page_token=token, page_size=min(limit - len(memories), 1000)
                               if limit else 0, filter=_filter(tag, types=memory_type), order_by=order_by)
            memories.extend(page.memories)
            token = page.next_page_token
    memories = memories[:limit] if limit else memories
    if json_:
        print_json({"memories": [as_json(m) for m in memories], "total_size": total})
    else:
        out.print(memory_table(memories, title=f"{len(memories)} of {total} memories of {agent_id}"))


@app.command()
def forget(
    ctx: typer.Context,
    agent: AgentOpt = None,
    tag: TagOpt = None,
    tags_all: Annotated[list[str] | None, typer.Option("--tags-all", help="Memories with all of these tags.")] = None,
    memory_type: Annotated[list[str] | None, typer.Option("--type", help="Memories of these types.")] = None,
    session: Annotated[str | None, typer.Option(help="Memories of this session.")] = None,
    id: Annotated[list[str] | None, typer.Option("--id", help="These memory ids.")] = None,
    min_importance: Annotated[float | None, typer.Option(help="Memories with importance ≥ this.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Delete every memory matching a filter (an empty filter is refused)."""
    s = settings(ctx)
    f = _filter(tag, tags_all, memory_type, session, id, min_importance)
    if not f:
        usage_error("forget needs a filter: --tag, --tags-all, --type, --session, --id or --min-importance")
    with s.client() as client:
        r = client.forget(s.agent(agent), filter=f, dry_run=dry_run)
    if json_:
        print_json(r)
    elif dry_run:
        out.print(f"would delete {r.matched_count} memories")
    else:
        out.print(f"deleted {r.deleted_count} of {r.matched_count} matching memories")


@app.command()
def consolidate(
    ctx: typer.Context,
    agent: AgentOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the groups; merge nothing.")] = False,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="Cosine similarity (0.5 to 1) from which memories are duplicates "
        "(default: the server's, 0.95).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Merge each group of near-duplicate memories into one (the others stay in its history)."""
    s = settings(ctx)
    with s.client() as client:
        r = client.consolidate(s.agent(agent), dry_run=dry_run, similarity_threshold=threshold)
    if json_:
        print_json(r)
        return
    duplicates = sum(len(g.duplicate_ids) for g in r.groups)
    if r.groups:
        table = Table()
        for col in ("keep", "duplicates", "min. similarity"):
            table.add_column(col, overflow="fold")
        for g in r.groups:
            table.add_row(g.keep_id, "\n".join(g.duplicate_ids), f"{g.min_similarity:.3f}")
        out.print(table)
    groups = _plural(len(r.groups), "group")
    if dry_run:
        out.print(f"would merge {_plural(duplicates, 'memory', 'memories')} in {groups} (dry run)")
    else:
        out.print(f"merged {_plural(r.merged_count, 'memory', 'memories')} in {groups}")


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@app.command()
def watch(
    ctx: typer.Context,
    agent: AgentOpt = None,
    all_agents: Annotated[bool, typer.Option(
        "--all-agents", help="Every agent the key may access, even with an agent configured.")] = False,
    from_start: Annotated[bool, typer.Option(
        "--from-start", help="Every change the server still retains, then new ones.")] = False,
    after: Annotated[str | None, typer.Option(
        "--after", help="Continue after this cursor (printed by an earlier watch).")] = None,
    count: Annotated[int, typer.Option(
        "--count", "-n", help="Stop after this many changes (0: run until interrupted).", min=0)] = 0,
) -> None:
    """Print changes to memories as they happen: one JSON line per event (with its cursor).

    Without --from-start or --after, only changes from now on. The stream resumes by itself when
    the connection drops or the server restarts. On exit, the cursor to continue from is printed
    to stderr (``--after CURSOR``).
    """
    s = settings(ctx)
    if from_start and after is not None:
        usage_error("--from-start and --after exclude each other")
    if after is not None and not after.isdigit():
        usage_error(f"--after takes a cursor printed by an earlier watch (digits), not {after!r}")
    agent_id = "" if all_agents else (agent or s.agent_id or "")
    _log_reconnects()
    seen = 0
    with s.client() as client, client.watch(agent_id, start_after="0" if from_start else after) as changes:
        try:
            for event in changes:
                sys.stdout.write(json.dumps(as_json(event), ensure_ascii=False) + "\n")
                sys.stdout.flush()
                seen += 1
                if count and seen >= count:
                    break
        except BrokenPipeError:  # the reader went away (`engram watch | head -1`): done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        finally:  # also on Ctrl-C (exit 130)
            if changes.cursor:
                err.print(f"cursor {changes.cursor} (continue with: engram watch --after {changes.cursor})",
                          highlight=False)


def _log_reconnects() -> None:
    """Say on stderr when a watch reopens its stream (the SDK logs it on ``engram.watch``)."""
    import logging

    logger = logging.getLogger("engram.watch")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("engram watch: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@app.command()
def history(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="Memory id.")],
    agent: AgentOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show every version of a memory, oldest first."""
    s = settings(ctx)
    with s.client() as client:
        r = client.history(id, agent_id=agent or s.agent_id or "")
    if json_:
        print_json(r)
        return
    table = Table(title=f"history of {id}")
    for col in ("version", "updated", "content", "tags"):
        table.add_column(col)
    for m in r.versions:
        table.add_row(str(m.version), _time(m.updated_at), _short(m.content), ", ".join(m.tags))
    out.print(table)


# --- export / import ------------------------------------------------------------------------


@app.command("export")
def export_(
    ctx: typer.Context,
    agent: AgentOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    tag: TagOpt = None,
) -> None:
    """Export an agent's memories as JSON Lines (one Memory per line, every field)."""
    s = settings(ctx)
    agent_id = s.agent(agent)
    count = 0
    with s.client() as client:
        total = client.list(agent_id, page_size=1, filter=_filter(tag)).total_size
        handle = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            with _progress(f"exporting {agent_id}", total, enabled=output is not None) as advance:
                for memory in client.export(agent_id, filter=_filter(tag) or None):
                    handle.write(json.dumps(as_json(memory), ensure_ascii=False) + "\n")
                    count += 1
                    advance()
        finally:
            if output:
                handle.close()
    err.print(f"exported {count} memories of {agent_id}" + (f" to {output}" if output else ""))


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON Lines file from `engram export` (- for stdin).",
                                         allow_dash=True)],
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Import into this agent "
                                              "(default: each memory's own agent).")] = None,
    id_prefix: Annotated[str, typer.Option(
        "--id-prefix", help="Prefix every memory id (ids are per agent: use this for a second copy "
        "in an agent that already holds the memories).")] = "",
    batch: Annotated[int, typer.Option(help="Memories per import call.")] = 500,
    json_: JsonOpt = False,
) -> None:
    """Import memories exported by `engram export`.

    Idempotent by id: a memory whose id exists is skipped, so an interrupted import is resumed
    by running the same command again (with the same --id-prefix).
    """
    s = settings(ctx)
    target = agent or ""
    lines = sys.stdin.readlines() if str(file) == "-" else _read_lines(file)
    imported = skipped = 0
    with s.client() as client, _progress("importing", len(lines), enabled=str(file) != "-") as advance:
        for chunk in _chunks(lines, max(1, batch)):
            memories = [_parse_line(line, number) for number, line in chunk]
            if id_prefix:
                for memory in memories:
                    memory.id = id_prefix + memory.id
            r = client.import_memories(memories, agent_id=target)
            imported += r.imported_count
            skipped += r.skipped_count
            for _ in chunk:
                advance()
    summary = {"imported_count": imported, "skipped_count": skipped, "read_count": len(lines)}
    if json_:
        print_json(summary)
    else:
        err.print(f"imported {imported}, skipped {skipped} (already present), read {len(lines)}")


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc}")


def _chunks(lines: list[str], size: int) -> Iterator[list[tuple[int, str]]]:
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    for start in range(0, len(numbered), size):
        yield numbered[start:start + size]


def _parse_line(line: str, number: int) -> pb.Memory:
    try:
        data = json.loads(line)
        if isinstance(data, dict) and isinstance(data.get("memory"), dict):
            data = data["memory"]
        memory: pb.Memory | None = _convert.message_of(pb.Memory, data)
    except (ValueError, TypeError) as exc:
        usage_error(f"line {number}: not a memory: {exc}")
    assert memory is not None
    return memory


class _progress:
    """A rich progress bar on stderr (a no-op when disabled or not a terminal)."""

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self._bar: Progress | None = None
        if enabled and err.is_terminal:
            self._bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=err, transient=True)
        self._total = total

    def __enter__(self) -> Any:
        if self._bar is None:
            return lambda: None
        self._bar.start()
        task = self._bar.add_task("", total=self._total or None)
        bar = self._bar
        return lambda: bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# --- agents ---------------------------------------------------------------------------------


@agents_app.callback(invoke_without_command=True)
def agents(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List agents (or: agents show ID, agents delete ID)."""
    if ctx.invoked_subcommand is not None:
        return
    s = settings(ctx)
    with s.client() as client:
        items = list(client.iter_agents())
    if json_:
        print_json({"agents": [as_json(a) for a in items]})
        return
    table = Table(title=f"{len(items)} agents")
    for col in ("agent", "memories", "links", "bytes", "last activity"):
        table.add_column(col)
    for a in items:
        table.add_row(a.agent_id, str(a.memory_count), str(a.link_count), str(a.bytes_stored),
                      _time(a.last_activity_at))
    out.print(table)


@agents_app.command("show")
def agents_show(ctx: typer.Context, agent_id: Annotated[str, typer.Argument()], json_: JsonOpt = False) -> None:
    """Show one agent with its counts."""
    with settings(ctx).client() as client:
        r = client.get_agent(agent_id)
    if json_:
        print_json(r.agent or pb.Agent())
    elif r.agent:
        table = Table(show_header=False, box=None)
        for key, value in as_json(r.agent).items():
            table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
        out.print(table)


@agents_app.command("delete")
def agents_delete(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Erase an agent and every memory of it. Cannot be undone."""
    if not yes and not typer.confirm(f"Erase agent {agent_id} and all its memories?"):
        raise typer.Exit(EXIT_USAGE)
    with settings(ctx).client() as client:
        r = client.delete_agent(agent_id)
    if json_:
        print_json(r)
    else:
        out.print(f"erased {agent_id}: {r.deleted_memory_count} memories")


# --- keys -----------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name to recognise the key by.")],
    role: Annotated[str, typer.Option(help="admin, read_write or read_only.")] = "read_write",
    agent: Annotated[list[str] | None, typer.Option("--agent", "-a", help="Only these agents (repeatable).")] = None,
    prefix: Annotated[str, typer.Option(help="Only agents whose id starts with this.")] = "",
    ttl: Annotated[int, typer.Option(help="Seconds until the key expires (0: never).")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Create an API key; its secret is printed once."""
    with settings(ctx).client() as client:
        r = client.create_api_key(name, role, agent_ids=agent or (), agent_id_prefix=prefix, ttl_seconds=ttl)
    if json_:
        print_json(r)
    else:
        out.print(f"key id {r.api_key.id if r.api_key else ''}\nsecret {r.key}\n(store the secret now)")


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked and expired keys.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List API keys (never their secrets)."""
    with settings(ctx).client() as client:
        r = client.list_api_keys(include_revoked=all_)
    if json_:
        print_json(r)
        return
    table = Table(title=f"{len(r.api_keys)} keys")
    for col in ("id", "name", "prefix", "role", "agents", "created", "revoked"):
        table.add_column(col)
    for k in r.api_keys:
        scope = ", ".join(k.agent_ids) or (k.agent_id_prefix + "*" if k.agent_id_prefix else "all")
        table.add_row(k.id, k.name, k.prefix, k.role.name.lower(), scope, _time(k.created_at), _time(k.revoked_at))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, id: Annotated[str, typer.Argument(help="Key id.")], json_: JsonOpt = False) -> None:
    """Revoke an API key; it stops working at once."""
    with settings(ctx).client() as client:
        r = client.revoke_api_key(id)
    if json_:
        print_json(r)
    else:
        out.print(f"revoked {id}")


# --- cluster ---------------------------------------------------------------------------------


@cluster_app.command("status")
def cluster_status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """The cluster's health, nodes and the shards each serves (a single server: one node)."""
    with settings(ctx).client() as client:
        r = client.cluster_status()
    if json_:
        print_json(r)
        return
    out.print(
        f"{'healthy' if r.healthy else 'NOT healthy'}: {r.mode or 'single'}, {r.healthy_node_count}/{r.node_count} "
        f"nodes, {r.shard_count} shards, replication {r.replication_factor}, map epoch {r.shard_map_epoch}"
    )
    table = Table()
    for col in ("node", "address", "alive", "role", "serving", "catching up", "lag"):
        table.add_column(col)
    for n in r.nodes:
        table.add_row(
            n.node_id, n.address, "yes" if n.healthy else "no", n.role, _shards(n.serving_shards),
            _shards(n.catching_up_shards), str(n.max_lag),
        )
    out.print(table)
    for name, engine in (("log", r.log), ("control", r.control)):
        if engine is not None and engine.engine:
            state = "ok" if engine.healthy else "DOWN"
            out.print(f"{name}: {engine.engine}, {engine.members} members, leader {engine.leader or '-'} ({state})")


@cluster_app.command("drain")
def cluster_drain(
    ctx: typer.Context, node_id: Annotated[str, typer.Argument(help="The node, as `cluster status` names it.")],
    json_: JsonOpt = False,
) -> None:
    """Move every shard off a node (each new owner serves first); stop the node once it owns none."""
    with settings(ctx).client() as client:
        r = client.drain_cluster_node(node_id)
    if json_:
        print_json(r)
    else:
        left = len(r.node.serving_shards) + len(r.node.catching_up_shards) if r.node else 0
        out.print(f"draining {node_id}: {left} shards to move; `engram cluster status` shows when it owns none")


def _shards(shards: list[int]) -> str:
    return ",".join(str(s) for s in shards) or "-"


# --- server ---------------------------------------------------------------------------------


@app.command()
def health(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Check that the server can serve."""
    with settings(ctx).client() as client:
        r = client.health()
    if json_:
        print_json(r)
    else:
        out.print(f"{r.status} (version {r.version})")


@app.command()
def info(
    ctx: typer.Context,
    stats: Annotated[bool, typer.Option("--stats", help="Also show server-wide statistics (admin).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Show the server's version, embedding model and limits."""
    with settings(ctx).client() as client:
        r = client.server_info()
        st = client.stats() if stats else None
    if json_:
        print_json({"info": as_json(r), **({"stats": as_json(st)} if st else {})})
        return
    table = Table(show_header=False, box=None)
    for key, value in as_json(r).items():
        if isinstance(value, dict):
            for k2, v2 in value.items():
                table.add_row(f"{key}.{k2}", str(v2))
        else:
            table.add_row(key, str(value))
    for key, value in (as_json(st) if st else {}).items():
        table.add_row(f"stats.{key}", str(value))
    out.print(table)


@app.command()
def mcp(
    ctx: typer.Context,
    profile: Annotated[
        str, typer.Option(help="default (store, recall, get, update, forget, list, consolidate) or all.")
    ] = "default",
    http: Annotated[bool, typer.Option(
        "--http", help="Serve the Streamable HTTP transport instead of stdio. Each MCP client sends its "
        "own Engram API key (Authorization: Bearer <key>), which is forwarded to the Engram server; "
        "--api-key/ENGRAM_API_KEY is not used.")] = False,
    host: Annotated[str, typer.Option(
        help="--http: address to listen on. Other than loopback needs --tls-cert/--tls-key "
        "(or --allow-plain-http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="--http: port to listen on.")] = 3301,
    path: Annotated[str, typer.Option(help="--http: URL path of the MCP endpoint.")] = "/mcp",
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", help="--http: TLS certificate chain (PEM) to serve HTTPS.", show_default=False)] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", help="--http: private key (PEM) of --tls-cert.", show_default=False)] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", help="--http: a Host header to accept besides the listening address "
        "(name, name:port or name:* for any port); repeatable.", show_default=False)] = None,
    allowed_origin: Annotated[list[str] | None, typer.Option(
        "--allowed-origin", help="--http: a browser Origin to accept (e.g. https://ide.example.com); "
        "repeatable.", show_default=False)] = None,
    allow_plain_http: Annotated[bool, typer.Option(
        "--allow-plain-http", help="--http: serve plain HTTP on a non-loopback address, for a "
        "TLS-terminating proxy that reaches it over a private network.")] = False,
) -> None:
    """Run a Model Context Protocol server over stdio, or over Streamable HTTP with --http, for AI
    assistants (needs the mcp extra: pip install 'engram-memory-client\\[mcp]')."""
    try:
        import mcp.server.stdio  # noqa: F401  (the optional dependency; imported again by serve_stdio)
    except ImportError as exc:
        missing_extra("mcp", "engram mcp", exc)
    import anyio

    from engram._async.client import AsyncClient
    from engram.mcp_server import PROFILES, serve_stdio

    if profile not in PROFILES:
        usage_error(f"--profile must be one of {', '.join(PROFILES)}")
    s = settings(ctx)
    transport = s.transport if s.transport in ("rest", "grpc") else None
    timeout = Timeout(s.timeout, connect=min(s.timeout, 5.0))
    if http:
        from engram.mcp_http import BindRefused, HttpOptions, check_options, serve_http

        opts = HttpOptions(
            host=host, port=port, path=path,
            tls_cert=str(tls_cert) if tls_cert else None, tls_key=str(tls_key) if tls_key else None,
            allowed_hosts=tuple(allowed_host or ()), allowed_origins=tuple(allowed_origin or ()),
            allow_plain_http=allow_plain_http,
        )
        try:
            check_options(opts)
        except BindRefused as exc:
            usage_error(str(exc))
        if s.api_key:
            err.print("engram mcp: note: --http does not use the configured API key; each MCP client's "
                      "own key is forwarded to the Engram server", highlight=False)

        async def run_http() -> None:
            await serve_http(s.url, transport=transport, timeout=timeout,  # type: ignore[arg-type]
                             profile=profile, agent_id=s.agent_id, opts=opts)

        anyio.run(run_http)
        return
    client = AsyncClient(s.url, api_key=s.api_key, transport=transport,  # type: ignore[arg-type]
                         timeout=timeout)

    async def run() -> None:
        await serve_stdio(client, profile=profile, agent_id=s.agent_id)

    anyio.run(run)


def main() -> None:
    """Entry point of the ``engram`` command."""
    try:
        app(prog_name="engram")
    except EngramError as exc:
        err.print(f"[red]error:[/red] {exc.code}: {exc.message}", highlight=False)
        sys.exit(exit_code(exc))
    except ModuleNotFoundError as exc:  # an optional dependency imported late
        extra = OPTIONAL_DEPENDENCIES.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        try:
            missing_extra(extra, "this command", exc)
        except typer.Exit as done:
            sys.exit(done.exit_code)
    except ValueError as exc:  # bad enum names and other local argument errors
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

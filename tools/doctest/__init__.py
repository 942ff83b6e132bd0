"""Docs that are executed: every code block of the user documentation runs against a real server.

`python -m tools.doctest [FILE.md ...]` (`make doctest`; part of `make test`) reads README.md,
docs/quickstart.md, docs/sdk/*.md, docs/cli.md, docs/mcp.md and docs/integrations/*.md (or the
files given), and for each file, in order:

1. Static checks (tools/doctest/checks.py): every `engram-server ...` / `make serve ARGS=...`
   command line in a shell block or inline code parses with the server's own parser (the Config
   OPTIONS table), every `engram ...` command line with the CLI's own parser (commands, options,
   values), every row of a table marked `cli-table` names only commands and options the CLI has,
   and every `ENGRAM_*` name is read by some code.
2. The fenced code blocks run one after the other, against one real `engram-server` per file (a
   fresh data directory, free ports, the root key `DOC_ROOT_KEY`, which docs/quickstart.md
   starts its server with); it is stopped after the file. A failing block fails the run with its
   file, line, text and output; so does a block marked `expect-fail` that succeeds.

How each block runs, by the first word of its info string:

* `sh`, `bash`, `shell`: a script run by `bash -euo pipefail`; `console`: only its `$ ` lines.
  curl reads a `.curlrc` with `fail-with-body`, so a request the server refuses fails the block.
* `python`: the repository's `.venv/bin/python`; top-level `await` / `async with` / `async for`
  run inside `asyncio.run()`.
* `ts`, `typescript`, `js`: one ES module per block (`.mts`) in a scratch npm project, where the
  document's own install commands put the SDK (`npm install .../engram-memory-client-0.1.0.tgz`),
  compiled by `tsc --strict` (sdk-typescript's TypeScript and @types/node), run by `node`. A block
  is wrapped: its `import` lines first, then a preamble defining `client` (an EngramClient for
  ENGRAM_URL / ENGRAM_API_KEY) and `apiKey`, then its other lines in a `{ }` scope (so it may
  declare its own `client`), then `client.close()`. A block with `export` runs as it is.
* `go`: one `package main` per block in a scratch module made by `go mod init`, which the
  document's install commands point at sdk-go (`go mod edit -replace ...`, `go get ...`). A block
  with `package` is a program as it is; any other is the body of
  `run(ctx, client, admin *engram.Client, addr, key string) error` (see runner.go_source).
* `rust`: one binary per block in a scratch crate with a path dependency on sdk-rust (feature
  `serde`), tokio and serde_json, built with `CARGO_TARGET_DIR=sdk-rust/target` so that the
  dependencies sdk-rust's tests compiled are reused. A block with `fn main` is a program as it
  is; any other is the body of a `#[tokio::main]` main with `use engram_client::*`, `client` and
  `other` (see runner.rust_source).
* `text`, `json`, `toml`, `yaml`, no language, ...: shown, never run. Any other language is an
  error until it is given a runner or a skip.

The blocks see the environment a reader who followed the quick start has: `ENGRAM_URL` and
`ENGRAM_API_KEY` (the harness server's), `ENGRAM_PORT`, `ENGRAM_GRPC_PORT` and
`ENGRAM_DATA_DIR` (this run's), no other `ENGRAM_*` from the caller, a fresh Python virtual
environment first on PATH (where `pip install` goes, from PyPI; one per run, shared by the
files; then the repository's `.venv/bin`), npm set to prefer its cache, and
XDG_CONFIG_HOME / XDG_DATA_HOME in the scratch directory. Before a block runs, the example
addresses of the documents are replaced: `127.0.0.1:3300` / `localhost:3300` by the run's port,
`:50051` by its second gRPC port, `/path/to/engram` by the checkout and `/tmp/` by a scratch
directory. Shell blocks run in a scratch directory unless marked `cwd=repo` (the checkout's root)
or `cwd=project` (the scratch npm/Go/Cargo project of the file).

Markers: one HTML comment on the line(s) before a block (or before a table, for `cli-table`):

    <!-- doctest: skip reason="installs from PyPI, where it is not published yet" -->
    <!-- doctest: server cwd=repo -->
    <!-- doctest: compile-only reason="talks to a placeholder host" -->
    <!-- doctest: expect-fail env=ENGRAM_TIMEOUT=1 timeout=30 -->
    <!-- doctest: cli-table -->

* `skip reason="..."`: not run; the reason is required and reported.
* `compile-only reason="..."`: built (or `bash -n` / `compile()`), never run; reason required.
* `server`: a shell block that starts the server (`make serve`) runs in the background; the file's
  later blocks use it once `GET /health` answers 200 on the run's port (it is stopped when the
  next server block starts and after the file). A server that does not come up fails the block.
* `expect-fail`: must exit non-zero.
* `cwd=repo|project|work`, `env=NAME=VALUE` (repeatable), `timeout=SECONDS`.
* `cli-table`: the table's rows are checked against the CLI (see checks.check_table).
"""

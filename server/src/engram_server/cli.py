"""`engram-server`: serve, back up, rotate the encryption key.

    engram-server serve [--host H] [--port P] [--grpc-port G] [--data-dir D] ...
    engram-server backup --target T [--data-dir D]           (also while the server runs)
    engram-server verify [--data-dir D]                      (a data directory or a backup)
    engram-server rotate-key --new-key-file F [--data-dir D]  (server stopped)

Every serve option also reads ENGRAM_<NAME> and the TOML file from --config / ENGRAM_CONFIG;
flags win over the environment, which wins over the file.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__
from .config import OPTIONS, Config, load


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    defaults = Config()
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML file with any of the options below (keys as in the flags, - or _). [env: ENGRAM_CONFIG]",
    )
    for opt in OPTIONS:
        d = getattr(defaults, opt.name)
        if opt.secret:
            shown = "unset"
        elif opt.type == "list":
            shown = ",".join(d) or "none"
        else:
            shown = d if d not in (None, "") else "unset"
        help_text = f"{opt.help} [env: {opt.env}] [default: {shown}]"
        if opt.type == "bool":
            p.add_argument(opt.flag, dest=opt.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            p.add_argument(opt.flag, dest=opt.name, default=None, metavar=opt.type.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engram-server",
        description="Engram: long-term memory server for AI agents (gRPC, gRPC-Web and REST on one port).",
        epilog="Run `engram-server serve --help` for every option and its ENGRAM_* environment variable. "
        "See docs/operations/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"engram-server {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="Run the server.",
        description="Run the server. Precedence: flags > ENGRAM_* environment > TOML file > defaults.",
    )
    _add_serve_options(serve)
    backup = sub.add_parser(
        "backup",
        help="Write a consistent copy of a data directory, also while the server is running.",
        description="Write a consistent copy of the data directory to the new directory TARGET, also while a "
        "server is serving it (a read-only RocksDB instance: no lock, no pause). The copy stays encrypted "
        "with the same key: keep the key to restore it. Restore: stop the server and use TARGET as its data "
        "directory.",
    )
    _add_data_dir_options(backup)
    backup.add_argument("--target", required=True, help="Directory to create (must not exist or be empty).")
    verify = sub.add_parser(
        "verify",
        help="Check every value of a data directory or a backup (also while the server runs).",
        description="Read every value of the data directory with RocksDB's checksums verified and "
        "authenticate it with the key; check that every memory has its vector and index entries and that "
        "the agents' counts add up. Prints each problem (naming the agent and memory where it can) and exits "
        "1 when there is any, 0 when the directory is sound. Point --data-dir at a backup to check the backup.",
    )
    _add_data_dir_options(verify)
    rotate = sub.add_parser(
        "rotate-key",
        help="Re-encrypt every stored value under a new encryption key (server stopped; resumable).",
        description="Re-encrypt every value of the data directory under a new key. Stop the server first. "
        "Interrupted, it can be run again with the same keys and continues; until it finishes the server "
        "refuses to start. Afterwards the old key no longer opens the directory: configure the new one "
        "(ENGRAM_ENCRYPTION_KEY_FILE or the default key file). Backups taken before keep needing the old key.",
    )
    _add_data_dir_options(rotate)
    rotate.add_argument(
        "--new-key-file",
        default=None,
        help="File holding the new key (64 hex characters); generated with mode 0600 when missing. "
        "[env: ENGRAM_NEW_ENCRYPTION_KEY_FILE]",
    )
    rotate.add_argument(
        "--batch-values",
        type=int,
        default=2000,
        help="Values re-encrypted per synced batch (the most a crash can make redo). Default 2000.",
    )
    return parser


def _add_data_dir_options(p: argparse.ArgumentParser) -> None:
    """The options that locate a data directory and its key (the same names as `serve`)."""
    p.add_argument("--data-dir", default=None, help="Data directory. [env: ENGRAM_DATA_DIR]")
    p.add_argument(
        "--encryption-key", default=None, help="Current key, 64 hex characters. [env: ENGRAM_ENCRYPTION_KEY]"
    )
    p.add_argument(
        "--encryption-key-file", default=None, help="File holding the current key. [env: ENGRAM_ENCRYPTION_KEY_FILE]"
    )
    p.add_argument("--config", default=None, help="TOML file. [env: ENGRAM_CONFIG]")


def _fail(msg: str, code: int = 2) -> int:
    import json

    print(json.dumps({"level": "error", "logger": "engram.server", "msg": msg}), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    tool_args = ("command", "config", "target", "new_key_file", "batch_values")
    values = {k: v for k, v in vars(args).items() if k not in tool_args}
    try:
        cfg = load(values, config_file=args.config)
        if args.command == "backup":
            return _backup(cfg, args.target)
        if args.command == "rotate-key":
            return _rotate_key(cfg, args.new_key_file, args.batch_values)
        if args.command == "verify":
            return _verify(cfg)
        cfg.validate()
    except ValueError as exc:
        return _fail(str(exc))
    return _serve(cfg, started)


def _serve(cfg: Config, started: float) -> int:
    import gc
    import logging

    from . import process_tuning

    gc.disable()  # during start-up only: the app turns it back on once it serves (app.py)
    process_tuning.apply()  # before anything imports numpy

    from . import logs

    logs.setup(cfg.log_level)
    log = logging.getLogger("engram.server")
    if not cfg.auth_required:
        logs.event(
            log,
            "no API key configured: authentication is off and only loopback is served",
            level=logging.WARNING,
            host=cfg.host,
        )
    logs.event(log, "starting", version=__version__, config=cfg.redacted())
    from .engine.engine import Engine
    from .engine.errors import EngineError

    try:
        engine = Engine.open(cfg.engine_config())
    except EngineError as exc:
        return _fail(f"cannot open the data directory {cfg.data_dir}: {exc}")
    except Exception as exc:
        return _fail(f"cannot open the data directory {cfg.data_dir}: {type(exc).__name__}: {exc}")
    from .server import serve

    try:
        serve(cfg, engine, started)
    except OSError as exc:  # a port in use or not allowed (server.bind_sockets says which)
        engine.close()
        return _fail(f"cannot serve: {exc.strerror or exc}")
    return 0


def _current_key(cfg: Config) -> bytes:
    from .engine.crypto import resolve_key

    return resolve_key(cfg.encryption_key_bytes(), cfg.encryption_key_file, create=False)


def _backup(cfg: Config, target: str) -> int:
    from pathlib import Path

    from .engine.backup import backup
    from .engine.crypto import Cipher
    from .engine.errors import EngineError

    try:
        report = backup(Path(cfg.data_dir) / "db", Path(target), Cipher(_current_key(cfg)))
    except (EngineError, OSError) as exc:
        return _fail(f"backup of {cfg.data_dir} failed, nothing was written to {target}: {exc}", code=1)
    print(
        f"backup written to {report.target} and verified: {report.total_values} values, "
        f"{report.bytes_copied / 1e6:.1f} MB in {report.seconds:.1f} s (still encrypted: keep the key with it)"
    )
    return 0


def _verify(cfg: Config) -> int:
    from pathlib import Path

    from .engine.crypto import Cipher
    from .engine.errors import EngineError
    from .engine.verify import verify

    try:
        report = verify(Path(cfg.data_dir) / "db", Cipher(_current_key(cfg)))
    except (EngineError, OSError) as exc:
        return _fail(f"cannot verify {cfg.data_dir}: {exc}", code=1)
    for line in report.problems:
        print(f"problem: {line}")
    if report.problem_count > len(report.problems):
        print(f"... and {report.problem_count - len(report.problems)} more problems")
    verdict = "sound" if report.ok else f"{report.problem_count} problems"
    print(f"{cfg.data_dir}: {report.total_values} values checked in {report.seconds:.1f} s: {verdict}")
    return 0 if report.ok else 1


def _rotate_key(cfg: Config, new_key_file: str | None, batch_values: int) -> int:
    import os
    from pathlib import Path

    from .engine.crypto import load_or_create_key_file
    from .engine.errors import EngineError
    from .engine.rotation import rotate_key

    path = new_key_file or os.environ.get("ENGRAM_NEW_ENCRYPTION_KEY_FILE")
    if not path:
        return _fail("rotate-key needs the new key: --new-key-file FILE (generated when it does not exist)")
    if batch_values < 1:
        return _fail("--batch-values must be at least 1")
    try:
        old = _current_key(cfg)
        new, created = load_or_create_key_file(Path(path))
        if created:
            print(f"generated a new key in {path} (mode 0600)")

        def progress(cf: str, done: int) -> None:
            print(f"  {cf}: {done} values re-encrypted so far", flush=True)

        report = rotate_key(Path(cfg.data_dir) / "db", old, new, batch_values=batch_values, progress=progress)
    except (EngineError, OSError) as exc:
        return _fail(f"key rotation of {cfg.data_dir} failed: {exc}")
    if report.nothing_to_do:
        print(f"{cfg.data_dir} is already encrypted with the new key (key id {report.new_key_id}): nothing to do")
        return 0
    print(
        f"{'resumed and ' if report.resumed else ''}finished: {report.rewritten} values re-encrypted "
        f"({report.already_rotated} already done by an earlier run) in {report.seconds:.1f} s; "
        f"key id {report.old_key_id} -> {report.new_key_id}"
    )
    if report.unreadable:
        print(f"warning: {report.unreadable} values were corrupted before the rotation and stay unreadable")
    print(
        f"Now configure the new key before starting the server, e.g. ENGRAM_ENCRYPTION_KEY_FILE={path} "
        "(or move it over the old key file). The old key no longer opens this data directory; keep it only "
        "as long as you keep backups taken before the rotation."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

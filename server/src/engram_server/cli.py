"""`engram-server`: serve, back up.

    engram-server serve [--host H] [--port P] [--grpc-port G] [--data-dir D] ...
    engram-server backup --data-dir D --target T

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
        help="Write a consistent copy of a data directory (RocksDB checkpoint).",
        description="Write a consistent copy of the data directory to TARGET. The copy stays "
        "encrypted: keep the encryption key to restore it. The server must not be "
        "running on the same data directory (RocksDB lock); use this while stopped.",
    )
    backup.add_argument("--data-dir", default=None, help="Data directory to back up. [env: ENGRAM_DATA_DIR]")
    backup.add_argument("--target", required=True, help="Directory to create (must not exist).")
    backup.add_argument("--encryption-key", default=None, help="[env: ENGRAM_ENCRYPTION_KEY]")
    backup.add_argument("--encryption-key-file", default=None, help="[env: ENGRAM_ENCRYPTION_KEY_FILE]")
    backup.add_argument("--config", default=None, help="TOML file. [env: ENGRAM_CONFIG]")
    return parser


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
    values = {k: v for k, v in vars(args).items() if k not in ("command", "config", "target")}
    try:
        cfg = load(values, config_file=args.config)
        if args.command == "backup":
            return _backup(cfg, args.target)
        cfg.validate()
    except ValueError as exc:
        return _fail(str(exc))
    return _serve(cfg, started)


def _serve(cfg: Config, started: float) -> int:
    import logging

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
    except OSError as exc:  # e.g. address in use
        engine.close()
        return _fail(f"cannot serve: {exc}")
    return 0


def _backup(cfg: Config, target: str) -> int:
    from .engine.engine import Engine
    from .engine.errors import EngineError

    try:
        engine = Engine.open(cfg.engine_config())
    except (EngineError, OSError) as exc:
        return _fail(f"cannot open the data directory {cfg.data_dir}: {exc}")
    try:
        engine.checkpoint(target)
    except (EngineError, OSError) as exc:
        return _fail(f"backup failed: {exc}")
    finally:
        engine.close()
    print(f"backup written to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

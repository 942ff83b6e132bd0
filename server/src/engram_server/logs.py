"""Structured JSON logs: one object per line on stderr. Never memory content or keys."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from typing import Any, TextIO

ACCESS_LOGGER = "engram.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if extra:
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("hypercorn.error", "hypercorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True


class AccessLog:
    """The per-request line, written straight to stderr: the logging machinery costs more than
    the request on cheap calls. Same JSON shape as the other lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def write(self, fields: dict[str, Any]) -> None:
        now = time.time()
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
            "level": "info",
            "logger": ACCESS_LOGGER,
            "msg": "request",
            **fields,
        }
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):
            stream.write(json.dumps(line, ensure_ascii=False) + "\n")


def event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})

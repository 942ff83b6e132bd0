"""Run the app under Hypercorn: binds, HTTP/2 settings, signals, graceful drain."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .config import Config
from .logs import event

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework

    from .engine.engine import Engine
    from .transport.connections import LimitedConfig

log = logging.getLogger("engram.server")


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def bind_sockets(cfg: Config) -> list[socket.socket]:
    """The listening sockets, bound here rather than by Hypercorn: a port that is taken fails the
    start before anything else begins (the model's load included), with a message naming the
    port and the setting that chose it. Hypercorn is then given the sockets (`fd://`)."""
    sockets: list[socket.socket] = []
    for port, setting in ((cfg.port, "--port / ENGRAM_PORT"), (cfg.grpc_port, "--grpc-port / ENGRAM_GRPC_PORT")):
        if not port:
            continue
        host = cfg.host.strip("[]")
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            for s in sockets:
                s.close()
            where = _bind(cfg.host, port)
            if exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno,
                    f"{where} is already in use (another engram-server, or another program, listens on port "
                    f"{port}): stop it, or choose another port with {setting}",
                ) from None
            if exc.errno == errno.EACCES:
                raise OSError(exc.errno, f"not allowed to listen on {where} (ports below 1024 need privileges)") from None  # noqa: E501
            raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror or exc}") from None
        sockets.append(sock)
    return sockets


def hypercorn_config(cfg: Config) -> LimitedConfig:
    from .transport.connections import LimitedConfig, Limits

    h = LimitedConfig()
    h.limits = Limits.of(cfg)  # idle, header and body timeouts, stream resets (transport/connections.py)
    h.bind = [_bind(cfg.host, cfg.port)]
    if cfg.grpc_port:
        h.bind.append(_bind(cfg.host, cfg.grpc_port))
    # A gRPC channel is one long-lived connection: Hypercorn's default of 1000 requests per
    # connection also applies to HTTP/2 and would send GOAWAY mid-stream.
    h.keep_alive_max_requests = 2**62
    # Hypercorn's one idle timeout; connections.LimitedTCPServer uses http1/http2_idle_timeout.
    h.keep_alive_timeout = cfg.http1_idle_timeout
    h.h2_max_concurrent_streams = cfg.max_concurrent_streams
    h.h2_max_inbound_frame_size = 2**20
    h.graceful_timeout = cfg.shutdown_timeout
    h.accesslog = None  # the app writes its own structured access log
    h.errorlog = logging.getLogger("hypercorn.error")
    h.loglevel = cfg.log_level.upper()
    h.max_app_queue_size = 64
    h.include_server_header = False
    return h


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it exists (not on Windows): its event loop is C, and the event loop's thread
    is the one the server's throughput waits on; in paired 16-client runs it lowered the
    server's CPU per recall."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def serve(cfg: Config, engine: Engine, started_at: float | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain and close the engine."""
    from hypercorn.asyncio import serve as hserve

    from .app import create_app
    from .transport import connections

    connections.install()

    sockets = bind_sockets(cfg)  # first: a taken port fails the start before anything begins
    app = create_app(cfg, engine=engine, close_engine=True)
    app.resume_gc_on_start = not gc.isenabled()  # cli paused it for the start-up
    app.begin_warm_up()
    hcfg = hypercorn_config(cfg)
    binds = hcfg.bind
    # Hypercorn owns the sockets from here (it closes them when it stops accepting): detach them,
    # so that the `finally` below closes only sockets that were never handed over.
    hcfg.bind = [f"fd://{s.detach()}" for s in sockets]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def stop_accepting() -> None:
            if not stop.is_set():
                event(log, "shutting down: draining in-flight calls", grace_seconds=cfg.shutdown_timeout)
                stop.set()

        def on_signal(signame: str) -> None:
            # First signal: /health answers 503 "stopping" at once, so that load balancers take
            # the server out; it keeps serving for drain_delay, then stops accepting and gives
            # the calls in flight up to shutdown_timeout. A second signal skips the delay.
            if app.state.stopping:
                stop_accepting()
                return
            app.state.stopping = True
            event(log, "shutting down", signal=signame, drain_delay_seconds=cfg.drain_delay)
            if cfg.drain_delay > 0:
                loop.call_later(cfg.drain_delay, stop_accepting)
            else:
                stop_accepting()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        event(
            log,
            "listening",
            binds=binds,
            auth_required=cfg.auth_required,
            startup_ms=round((time.perf_counter() - started_at) * 1000, 1) if started_at else None,
        )
        await hserve(cast("ASGIFramework", app), hcfg, shutdown_trigger=stop.wait)

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    finally:
        for s in sockets:
            s.close()
    event(log, "stopped")

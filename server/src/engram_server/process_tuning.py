"""Process-wide settings the server applies at start, before anything imports numpy.

Kept apart from the CLI so that the in-process engine benchmark (`bench.load.engine_latency`)
runs under the same settings as the server it is compared with. Each setting yields to an
explicit environment variable of the same effect.
"""

from __future__ import annotations

import ctypes
import os


def apply() -> None:
    limit_malloc_arenas()
    one_blas_thread()


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most `arenas` glibc malloc arenas. glibc gives threads that allocate at the same time
    arenas of their own (up to 8 per core) and each keeps what is freed in it; the server's
    request, embedding and background threads left about 100 MiB more RSS at 10k memories
    (`MALLOC_ARENA_MAX=2 python -m bench.load.engine_latency`: 515 -> 418 MiB, same latency and
    ingest rate). An explicit MALLOC_ARENA_MAX wins; a no-op without glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def one_blas_thread() -> None:
    """OpenBLAS runs single-threaded. The exact search of the growing vector segment is a BLAS
    product; with OpenBLAS's default pool its second thread then spins for about 0.1 s after
    every product, on a core the next request needs: at 16 concurrent gRPC clients that spin
    was about a third of the server's CPU (the *server CPU ms/op* of `python -m bench.load.run`,
    with and without OPENBLAS_NUM_THREADS=2). The server's parallelism is its requests.
    OpenBLAS reads this when numpy loads, so it must be set before any import of numpy; an
    explicit OPENBLAS_NUM_THREADS wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

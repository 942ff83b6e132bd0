"""Shared pieces of the benchmark harnesses: a real server on loopback, a seeded corpus, timing.

Every harness talks to Engram through its public API (gRPC with the generated stubs, REST with
httpx), never through the engine, so the figures are what a user sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
SERVER_BIN = Path(os.environ.get("ENGRAM_SERVER_BIN", REPO / ".venv" / "bin" / "engram-server"))
ROOT_KEY = "bench-root-key-" + "0" * 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A real `engram-server serve` on a free loopback port, over a data dir it may keep."""

    data_dir: Path
    encryption_key: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    started_at: float = 0.0
    extra_args: list[str] = field(default_factory=list)
    nofile: int | None = None  # RLIMIT_NOFILE of the server process (Linux); None: inherited
    server_bin: Path = SERVER_BIN  # another install of the server (tests/packaging)
    env: dict[str, str] = field(default_factory=dict)  # added to the server's environment

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 120.0) -> float:
        """Start the server; returns seconds from spawn to healthy (or 0 when not waiting)."""
        self.port = self.port or free_port()
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        env = dict(os.environ, ENGRAM_ENCRYPTION_KEY=self.encryption_key, **self.env)
        cmd = [
            str(self.server_bin), "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--grpc-port", "0", "--data-dir", str(self.data_dir), "--api-key", ROOT_KEY,
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        if self.nofile:  # set from here (prlimit), not in the forked child: the caller may have threads
            import resource

            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        if not wait:
            return 0.0
        return self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 120.0) -> float:
        deadline = time.perf_counter() + timeout
        with httpx.Client(timeout=1.0) as http:
            while time.perf_counter() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited early, see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.base_url}/health").status_code == 200:
                        return time.perf_counter() - self.started_at
                time.sleep(0.005)
        raise TimeoutError(f"server not healthy after {timeout}s, see {self.log_path}")

    def rss_bytes(self) -> int:
        assert self.proc is not None
        return rss_of(self.proc.pid)

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far, all threads (user + system)."""
        assert self.proc is not None
        return cpu_seconds_of(self.proc.pid)

    def loop_cpu_seconds(self) -> float:
        """CPU time of the server's main thread, which runs the event loop (every request's
        protocol, decoding and encoding); the engine's work runs on other threads."""
        assert self.proc is not None
        return cpu_seconds_of(self.proc.pid, thread=self.proc.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running_server(data_dir: Path | None = None, key: str | None = None) -> Iterator[ServerProcess]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    server = ServerProcess(data_dir=data_dir or tmp / "data", encryption_key=key or secrets.token_hex(32))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if data_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def rss_of(pid: int) -> int:
    """Resident set size of a process, in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds_of(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of a process, all its threads, or of one thread (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- a seeded corpus of agent-memory-like texts ----------------------------------------------
# Synthetic but realistic: first-person facts, preferences, events and procedures of the kind
# agents store, assembled from templates and vocabularies with a seeded RNG, so every run and
# every machine gets the same corpus and the same queries.

_PEOPLE = ["Alice", "Bob", "Carmen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
           "Kemi", "Liam", "Maya", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara"]
_PLACES = ["Lisbon", "Osaka", "Nairobi", "Toronto", "Berlin", "Lima", "Hanoi", "Oslo", "Austin",
           "Marseille", "Seoul", "Dublin", "Cape Town", "Bogota", "Krakow", "Auckland"]
_TOPICS = ["the database migration", "the quarterly budget", "the onboarding flow", "the API rate limits",
           "the mobile release", "the hiring plan", "the security audit", "the pricing page",
           "the data pipeline", "the customer interview", "the design review", "the on-call rotation",
           "the search ranking", "the memory server", "the billing bug", "the load test"]
_TECH = ["Rust", "Python", "Go", "TypeScript", "PostgreSQL", "RocksDB", "Kubernetes", "Redis",
         "gRPC", "Kafka", "React", "ONNX", "Terraform", "SQLite", "Nginx", "Docker"]
_FOODS = ["ramen", "tacos", "falafel", "sushi", "pho", "paella", "dumplings", "curry", "pizza", "injera"]
_HOBBIES = ["rock climbing", "sourdough baking", "chess", "trail running", "watercolor painting",
            "birdwatching", "jazz piano", "woodworking", "salsa dancing", "astronomy"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_TEMPLATES = [
    "{p} prefers {tech} over {tech2} for backend services because of its tooling.",
    "{p} mentioned that {p2} is moving to {place} next month for a new job.",
    "On {day}, {p} and {p2} discussed {topic} and agreed to ship it by Friday.",
    "{p} is allergic to peanuts and avoids {food} from street vendors.",
    "{p} spends weekends on {hobby} and wants to try it in {place}.",
    "The user asked to always answer in short bullet points when talking about {topic}.",
    "To deploy {topic}, run the {tech} job first, then restart the workers one at a time.",
    "{p} reported error code E{code} while running {tech} on the staging cluster.",
    "{p}'s favourite food is {food}; they had it in {place} last summer.",
    "Reminder: {p} has a meeting about {topic} every {day} at {hour}:00.",
    "{p} thinks {topic} is blocked on {p2}'s review of the {tech} changes.",
    "{p} learned that {tech} handles {topic} poorly under high concurrency.",
    "{p} visited {place} with {p2} and recommends the {food} near the station.",
    "The ticket ENG-{code} about {topic} was closed by {p} after a {tech} upgrade.",
]


def corpus(n: int, seed: int = 42) -> list[str]:
    """n distinct memory texts, deterministic for a seed."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        t = rng.choice(_TEMPLATES)
        text = t.format(
            p=rng.choice(_PEOPLE), p2=rng.choice(_PEOPLE), place=rng.choice(_PLACES),
            topic=rng.choice(_TOPICS), tech=rng.choice(_TECH), tech2=rng.choice(_TECH),
            food=rng.choice(_FOODS), hobby=rng.choice(_HOBBIES), day=rng.choice(_DAYS),
            hour=rng.randint(8, 18), code=rng.randint(1000, 9999),
        )
        out.append(f"{text} (note {i})")
    return out


def queries(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    forms = [
        "what does {p} prefer for backend work", "where is {p2} moving", "what food does {p} like",
        "when is the meeting about {topic}", "who is blocking {topic}", "error code on staging with {tech}",
        "how do I deploy {topic}", "what are {p}'s hobbies", "recommendations in {place}",
        "allergies of {p}",
    ]
    return [
        rng.choice(forms).format(p=rng.choice(_PEOPLE), p2=rng.choice(_PEOPLE), topic=rng.choice(_TOPICS),
                                 tech=rng.choice(_TECH), place=rng.choice(_PLACES))
        for _ in range(n)
    ]


# --- statistics and results ------------------------------------------------------------------

def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds."""
    if not samples_s:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "n": 0}
    ms = sorted(s * 1000 for s in samples_s)

    def q(p: float) -> float:
        return ms[min(len(ms) - 1, int(round(p * (len(ms) - 1))))]

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99), "mean_ms": statistics.fmean(ms), "n": len(ms)}


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "python": sys.version.split()[0],
        "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), **payload}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path

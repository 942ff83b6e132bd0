"""The container image (`make image`: deploy/Containerfile, tools/image.py), run as a user runs it.

The image is built with podman, or reused when one was built from the same inputs (its label
org.engram.image.inputs: a digest of the lock, the server's sources, deploy/ and the base image):
after the first run this module costs the containers' starts, about 15 s. Where podman cannot
build or run containers (not installed and no apt-get or no root to install it, or a kernel that
refuses its containers, or no Debian mirror to make the base from) every test that needs it is
SKIPPED, with the reason.

With one container on a named volume and a free port:

* the quick start's memory stored and recalled over REST (httpx) and over gRPC (the Python SDK);
* the container restarted (`podman restart`: SIGTERM, then a start) and the memory recalled again;
* SIGTERM: /health turns 503 "stopping" while calls are still served (ENGRAM_DRAIN_DELAY), then
  the server closes the database and exits 0, logging a clean shutdown;
* a new container on the same volume (an upgrade) recalls the memory;
* started without an API key, the image refuses to serve on 0.0.0.0 (the entrypoint, and the
  server itself when the entrypoint is bypassed).

deploy/compose.yaml is checked as YAML always, and brought up with podman-compose when podman works.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.common import free_port  # noqa: E402
from tools import image as img  # noqa: E402

COMPOSE = REPO / "deploy" / "compose.yaml"
CONTENT = "The user prefers window seats on long flights"  # the quick start's memory
QUERY = "seat preference"
SIZE_GOAL = 900e6  # bytes; docs/benchmarks.md reports the measured size
RUN_ID = f"{os.getpid()}-{secrets.token_hex(3)}"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return img.podman(*args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    """The image's reference; skips the module's container tests where podman cannot work."""
    try:
        img.ensure_tools()
        img.check_podman()
        img.build_base()
        img.check_can_run()
    except img.Unavailable as exc:
        pytest.skip(f"podman cannot build or run containers here: {exc}")
    started = time.perf_counter()
    ref = img.build()
    print(f"image {ref} ready in {time.perf_counter() - started:.1f} s")
    return ref


class Container:
    """One `podman run -d` of the image, published on a free loopback port."""

    def __init__(self, ref: str, volume: str, api_key: str, env: dict[str, str] | None = None) -> None:
        self.name = f"engram-test-{RUN_ID}-{secrets.token_hex(2)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        args = ["run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:3300", "-v", f"{volume}:/data",
                "-e", "ENGRAM_API_KEY", "-e", "ENGRAM_GRPC_PORT=0"]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        # The key goes through the environment (-e NAME), not the command line.
        done = subprocess.run(["podman", *args, ref], env={**img.podman_env(), "ENGRAM_API_KEY": api_key},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            assert self.state()["Running"], f"the container exited:\n{self.logs()}"
            time.sleep(0.05)
        raise AssertionError(f"not healthy after {timeout} s:\n{self.logs()}")

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(podman("inspect", "--format", "{{json .State}}", self.name).stdout)
        return state

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def wait_exit(self, timeout: float = 60) -> int:
        return int(podman("wait", self.name, timeout=timeout).stdout.strip())

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)


@pytest.fixture
def volume(image: str) -> Iterator[str]:
    name = f"engram-test-{RUN_ID}-{secrets.token_hex(2)}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "-f", name, check=False)


def store_and_recall_rest(c: Container, agent: str) -> str:
    with httpx.Client(base_url=c.url, headers=c.auth, timeout=30) as http:
        stored = http.post("/v1/memories", json={"agent_id": agent, "content": CONTENT, "importance": 0.8})
        assert stored.status_code == 200, stored.text
        memory_id: str = stored.json()["memory"]["id"]
    assert recall_rest(c, agent) == [(memory_id, CONTENT)]
    return memory_id


def recall_rest(c: Container, agent: str) -> list[tuple[str, str]]:
    r = httpx.post(f"{c.url}/v1/memories/recall", headers=c.auth, timeout=30,
                   json={"agent_id": agent, "query": QUERY, "top_k": 3})
    assert r.status_code == 200, r.text
    return [(h["id"], h["content"]) for h in r.json()["memories"]]


def grpc_client(c: Container) -> Any:
    import engram

    return engram.Client(f"grpc://127.0.0.1:{c.port}", api_key=c.api_key)


def recall_grpc(c: Container, agent: str) -> list[tuple[str, str]]:
    with grpc_client(c) as client:
        return [(m.id, m.content) for m in client.recall(agent, QUERY, top_k=3).memories]


def log_events(logs: str) -> list[dict[str, Any]]:
    events = []
    for line in logs.splitlines():
        with contextlib.suppress(ValueError):
            if line.startswith("{"):
                events.append(json.loads(line))
    return events


def test_store_recall_restart_drain(image: str, volume: str) -> None:
    key = "container-test-" + secrets.token_urlsafe(24)
    c = Container(image, volume, key, env={"ENGRAM_DRAIN_DELAY": "2"})
    try:
        c.wait_healthy()
        # The server is PID 1 (SIGTERM reaches it) and runs as the image's user.
        top = podman("top", c.name, "pid", "user", "args").stdout.splitlines()[1].split()
        assert top[:2] == ["1", "engram"] and "engram-server" in " ".join(top[2:]), top
        assert podman("healthcheck", "run", c.name, check=False).returncode == 0, "the image's HEALTHCHECK failed"

        rest_id = store_and_recall_rest(c, "assistant")
        assert recall_grpc(c, "assistant") == [(rest_id, CONTENT)]
        with grpc_client(c) as client:
            grpc_id = client.store("assistant-grpc", CONTENT, importance=0.8).memory.id
        assert recall_grpc(c, "assistant-grpc") == [(grpc_id, CONTENT)]
        assert recall_rest(c, "assistant-grpc") == [(grpc_id, CONTENT)]

        podman("restart", "-t", "30", c.name)
        c.wait_healthy()
        assert recall_rest(c, "assistant") == [(rest_id, CONTENT)]
        assert recall_grpc(c, "assistant-grpc") == [(grpc_id, CONTENT)]

        # SIGTERM: for the drain delay /health says "stopping" and calls are still answered.
        podman("kill", "--signal", "TERM", c.name)
        deadline = time.monotonic() + 1.5
        health = httpx.get(f"{c.url}/health", timeout=1)
        while health.status_code == 200 and time.monotonic() < deadline:
            health = httpx.get(f"{c.url}/health", timeout=1)
        assert (health.status_code, health.json()["status"]) == (503, "stopping"), health.text
        assert recall_rest(c, "assistant") == [(rest_id, CONTENT)]
        assert c.wait_exit() == 0
        logs = c.logs()
        assert not c.state()["OOMKilled"]
    finally:
        c.remove()

    events = [e for e in log_events(logs) if e.get("logger") == "engram.server"]
    messages = [e["msg"] for e in events]
    assert messages.count("stopped") == 2 and messages.count("engine closed") == 2, messages  # restart + stop
    shutdowns = [e for e in events if e["msg"] == "shutting down"]
    assert [e.get("signal") for e in shutdowns] == ["SIGTERM", "SIGTERM"], shutdowns
    assert not [e for e in log_events(logs) if e.get("level") in ("error", "critical")], logs
    assert "Traceback" not in logs
    assert '"transport":"grpc"' in logs.replace(" ", "")
    assert key not in logs, "the API key was logged"

    # A new container on the same volume (an upgrade) finds the data and its key.
    c2 = Container(image, volume, key)
    try:
        c2.wait_healthy()
        assert recall_rest(c2, "assistant") == [(rest_id, CONTENT)]
        assert recall_grpc(c2, "assistant-grpc") == [(grpc_id, CONTENT)]
        podman("stop", "-t", "30", c2.name)
        assert c2.state()["ExitCode"] == 0, c2.logs()
    finally:
        c2.remove()


def test_refuses_every_address_without_a_key(image: str) -> None:
    done = podman("run", "--rm", image, check=False)
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without an API key: set ENGRAM_API_KEY" in done.stderr, done.stderr
    # An empty key (an env file's `ENGRAM_API_KEY=`) is no key.
    done = podman("run", "--rm", "-e", "ENGRAM_API_KEY=", image, "--log-level", "debug", check=False)
    assert done.returncode == 2 and "refusing to serve on 0.0.0.0" in done.stderr, done.stderr
    # Past the entrypoint, the server refuses too.
    done = podman("run", "--rm", "--entrypoint", "engram-server", image, "serve", check=False)
    assert done.returncode == 2 and "refusing to bind 0.0.0.0 without an API key" in done.stderr, done.stderr
    # A key too short for the server.
    done = podman("run", "--rm", "-e", "ENGRAM_API_KEY=short", image, check=False)
    assert done.returncode == 2 and "at least 16 characters" in done.stderr, done.stderr


def test_image_configuration(image: str) -> None:
    data = img.inspect(image)
    config = data["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == img.version()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"] == img.SOURCE_URL
    assert labels["org.opencontainers.image.base.name"] == img.BASE_IMAGE
    base = img.image_id(img.BASE_IMAGE)
    assert base and labels[img.INPUTS_LABEL] == img.inputs_digest(base), "the image is not the one of these inputs"
    assert config["User"] == "10001:10001"
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"] == ["/usr/local/bin/engram-entrypoint"] and config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    assert "3300/tcp" in config["ExposedPorts"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["ENGRAM_HOST"] == "0.0.0.0" and env["ENGRAM_DATA_DIR"] == "/data"
    assert "ENGRAM_API_KEY" not in env and "ENGRAM_ENCRYPTION_KEY" not in env
    assert data["Size"] <= SIZE_GOAL, f"the image is {data['Size'] / 1e6:.0f} MB, over {SIZE_GOAL / 1e6:.0f} MB"
    # Docker's format, the one with a health check: the image's checks /health.
    assert data["Healthcheck"]["Test"][-1] == "/usr/local/lib/engram/healthcheck.py", data["Healthcheck"]

    # What the image holds: the environment (no pip), the prepared model graph, no key.
    listing = podman(
        "run", "--rm", "--entrypoint", "sh", image, "-c",
        "ls /opt/engram/bin; ls /var/cache/engram/engram; ls -A /data; "
        "/opt/engram/bin/python -c 'import importlib.util as u; print(u.find_spec(\"pip\"))'",
    ).stdout.split()
    assert "engram-server" in listing and "pip" not in listing and "pip3" not in listing
    assert "all-MiniLM-L6-v2.w8-int8-dynamic.onnx" in listing
    assert "encryption.key" not in listing and listing[-1] == "None"


def test_compose_file_is_valid() -> None:
    """deploy/compose.yaml: a single node, the image, a named volume at /data, the key from an
    env file, the image's health check. (Run for real by test_compose_up where podman works.)"""
    doc = yaml.safe_load(COMPOSE.read_text())
    assert set(doc) == {"services", "volumes"}
    (name, svc), = doc["services"].items()
    assert name == "engram"
    assert svc["image"] == f"${{ENGRAM_IMAGE:-{img.image_ref()}}}"
    assert svc["env_file"] == ["engram.env"]
    volume, target = svc["volumes"][0].split(":")
    assert target == "/data" and volume in doc["volumes"], "the data must be in a named volume"
    assert svc["ports"] == ["${ENGRAM_PUBLISH_PORT:-3300}:3300"]
    assert svc["healthcheck"]["test"] == ["CMD", "/usr/bin/python3", "-I", "-S", "/usr/local/lib/engram/healthcheck.py"]
    containerfile = (REPO / "deploy" / "Containerfile").read_text()
    assert 'CMD ["/usr/bin/python3", "-I", "-S", "/usr/local/lib/engram/healthcheck.py"]' in containerfile
    assert svc["stop_grace_period"] == "30s"
    example = (REPO / "deploy" / "engram.env.example").read_text()
    assert "\nENGRAM_API_KEY=\n" in example


def test_compose_up(image: str, tmp_path: Path) -> None:
    """podman-compose (Debian's, installed with apt-get like podman) runs deploy/compose.yaml."""
    if shutil.which("podman-compose") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("podman-compose is not installed (and no root or apt-get to install it)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "podman-compose"]
        done = subprocess.run(install, capture_output=True, text=True, env=env)
        if done.returncode != 0:  # no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
            done = subprocess.run(install, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            pytest.skip(f"podman-compose could not be installed with apt-get: {done.stdout[-500:]}{done.stderr[-500:]}")
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    key = "compose-test-" + secrets.token_urlsafe(24)
    (tmp_path / "engram.env").write_text(f"ENGRAM_API_KEY={key}\n")
    port = free_port()
    project = f"engramtest{RUN_ID.replace('-', '')}"
    env = {**img.podman_env(), "ENGRAM_PUBLISH_PORT": str(port), "ENGRAM_IMAGE": image}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stdout + up.stderr
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, compose("logs").stdout
            time.sleep(0.05)
        auth = {"Authorization": f"Bearer {key}"}
        stored = httpx.post(f"http://127.0.0.1:{port}/v1/memories", headers=auth,
                            json={"agent_id": "assistant", "content": CONTENT}, timeout=30)
        assert stored.status_code == 200, stored.text
        volumes = podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
        assert f"{project}_engram-data" in volumes
    finally:
        down = compose("down")
        podman("volume", "rm", "-f", f"{project}_engram-data", check=False)
    assert down.returncode == 0, down.stdout + down.stderr

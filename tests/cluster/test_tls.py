"""TLS between the nodes and the engines: etcd over HTTPS and NATS over TLS, with a CA made for the
test, plus NATS user/password authorization. A node that does not trust the CA cannot join."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import http, running_cluster

from tools.cluster.local import LocalCluster, free_ports


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("tls"), nodes=2, shards=4, replication=2, tls=True)


def test_nodes_talk_to_etcd_and_nats_over_tls(tls_cluster: LocalCluster) -> None:
    c = tls_cluster
    assert all(u.startswith("https://") for u in c.etcd_client)
    assert all(u.startswith("tls://") for u in c.nats_client)
    status, st, _ = http(c, 0, "GET", "/v1/cluster/status")
    assert status == 200 and st["healthy"], st
    status, body, token = http(c, 0, "POST", "/v1/memories", {"agent_id": "tls", "content": "sealed in transit too"})
    assert status == 200, body
    status, got, _ = http(c, 1, "GET", f"/v1/memories/{body['memory']['id']}?agent_id=tls", token=token)
    assert status == 200 and got["memory"]["content"] == "sealed in transit too"


def test_a_node_without_the_ca_cannot_join(tls_cluster: LocalCluster, tmp_path: Path) -> None:
    c = tls_cluster
    env = dict(os.environ)
    env.update(c._engram_proc(0).env or {})
    env.pop("ENGRAM_CLUSTER_TLS_CA", None)
    env.update(
        {
            "ENGRAM_CLUSTER_NODE_ID": "intruder",
            "ENGRAM_PORT": str(free_ports(1)[0]),
            "ENGRAM_DATA_DIR": str(tmp_path / "d"),
        }
    )
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "engram_server.cli", "serve"], env=env, capture_output=True, timeout=120, text=True
    )
    assert proc.returncode != 0
    assert "certificate" in (proc.stdout + proc.stderr).lower() or "ssl" in (proc.stdout + proc.stderr).lower(), (
        proc.stdout + proc.stderr
    )[-2000:]
    assert time.monotonic() - t0 < 100


def test_wrong_nats_password_is_refused(tls_cluster: LocalCluster, tmp_path: Path) -> None:
    c = tls_cluster
    env = dict(os.environ)
    env.update(c._engram_proc(0).env or {})
    env.update(
        {
            "ENGRAM_CLUSTER_NODE_ID": "guesser",
            "ENGRAM_PORT": str(free_ports(1)[0]),
            "ENGRAM_DATA_DIR": str(tmp_path / "d"),
            "ENGRAM_CLUSTER_NATS_PASSWORD": "not-the-password",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "engram_server.cli", "serve"], env=env, capture_output=True, timeout=120, text=True
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "authorization" in out.lower(), out[-2000:]
    assert "not-the-password" not in out  # the secret never reaches the log

"""A real network partition: three hosts in network namespaces on one bridge, each running its
etcd member, NATS server and Engram node on its own address; one host's link is cut.

    sw (bridge br0) ── b1 ── h1 10.251.0.1     the test itself reaches the hosts through
                    ├─ b2 ── h2 10.251.0.2     vroot, 10.251.0.100, in the root namespace
                    ├─ b3 ── h3 10.251.0.3
                    └─ broot ── vroot

Addresses exist only on these links. Needs root and `ip netns`; skipped cleanly where
`ip netns add` is not permitted.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_harness import ROOT_KEY, Ledger, Load, check_ledger, running_cluster, status_of, wait_until

from tools.cluster.local import LocalCluster

SUBNET = "10.251.0"
TAG = secrets.token_hex(2)  # namespace names unique to this run
HOSTS = [f"eg{TAG}h{i}" for i in (1, 2, 3)]
SWITCH = f"eg{TAG}sw"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _netns_allowed() -> bool:
    probe = f"eg{TAG}probe"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return True


def _teardown() -> None:
    for ns in [*HOSTS, SWITCH]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    subprocess.run(["ip", "link", "del", f"eg{TAG}vr"], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[str]]:
    if not _netns_allowed():
        pytest.skip("`ip netns add` is not permitted here (needs root and network namespaces)")
    try:
        _build_topology()
    except subprocess.CalledProcessError as exc:
        _teardown()
        pytest.skip(
            f"network namespaces without veth or bridge links here: {exc.stderr.decode(errors='replace')[:200]}"
        )
    try:
        yield HOSTS
    finally:
        _teardown()


def _build_topology() -> None:
    """The bridge namespace, three hosts on it and a link from the test's own namespace."""
    _ip("netns", "add", SWITCH)
    _ip("-n", SWITCH, "link", "add", "br0", "type", "bridge")
    _ip("-n", SWITCH, "link", "set", "br0", "up")
    for i, ns in enumerate(HOSTS, start=1):
        _ip("netns", "add", ns)
        _ip("link", "add", f"eg{TAG}v{i}", "type", "veth", "peer", "name", f"eg{TAG}b{i}")
        _ip("link", "set", f"eg{TAG}v{i}", "netns", ns)
        _ip("link", "set", f"eg{TAG}b{i}", "netns", SWITCH)
        _ip("-n", SWITCH, "link", "set", f"eg{TAG}b{i}", "master", "br0")
        _ip("-n", SWITCH, "link", "set", f"eg{TAG}b{i}", "up")
        _ip("-n", ns, "addr", "add", f"{SUBNET}.{i}/24", "dev", f"eg{TAG}v{i}")
        _ip("-n", ns, "link", "set", f"eg{TAG}v{i}", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("link", "add", f"eg{TAG}vr", "type", "veth", "peer", "name", f"eg{TAG}br")
    _ip("link", "set", f"eg{TAG}br", "netns", SWITCH)
    _ip("-n", SWITCH, "link", "set", f"eg{TAG}br", "master", "br0")
    _ip("-n", SWITCH, "link", "set", f"eg{TAG}br", "up")
    _ip("addr", "add", f"{SUBNET}.100/24", "dev", f"eg{TAG}vr")
    _ip("link", "set", f"eg{TAG}vr", "up")


@pytest.fixture(scope="module")
def cluster(hosts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(
        tmp_path_factory.mktemp("netns"),
        nodes=3,
        shards=8,
        replication=2,
        hosts=[f"{SUBNET}.{i}" for i in (1, 2, 3)],
        netns=hosts,
    )


def _write_from_inside(ns: str, url: str, timeout: float) -> tuple[int, str]:
    """A store sent from inside a host's namespace (the test's own namespace cannot reach it)."""
    code = (
        "import json, sys, urllib.request, urllib.error\n"
        f"req = urllib.request.Request({url!r} + '/v1/memories', method='POST', "
        "data=json.dumps({'agent_id': 'agent-1', 'content': 'written on the minority side'}).encode(), "
        f"headers={{'content-type': 'application/json', 'authorization': 'Bearer {ROOT_KEY}'}})\n"
        "try:\n"
        f"    r = urllib.request.urlopen(req, timeout={timeout})\n"
        "    print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode())\n"
    )
    out = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout + 30
    )
    status, _, body = out.stdout.strip().partition(" ")
    return (int(status) if status.isdigit() else 0), body + out.stderr[-500:]


def test_partition_one_host(cluster: LocalCluster, tmp_path: Path) -> None:
    ledger, epochs = Ledger(), []
    isolated = 2
    with Load(cluster, ledger, reads=True) as load:
        time.sleep(2)
        load.exclude_reads = load.exclude_writes = {isolated}  # the test cannot reach h3 once it is cut
        time.sleep(0.5)
        _ip("-n", SWITCH, "link", "set", f"eg{TAG}b3", "down")

        # The majority side moves h3's shards within a few leases and stays healthy.
        def moved_away() -> bool:
            st = status_of(cluster, 0)
            last_status.append(st)
            return bool(st["healthy"]) and not [o for sh in st["shards"] for o in sh["owners"] if o["node_id"] == "m3"]

        last_status: list[dict[str, Any]] = []
        try:
            moved = wait_until(moved_away, 30, "the majority moves the isolated node's shards")
        except AssertionError:
            print(json.dumps(last_status[-1] if last_status else None)[:4000])
            raise
        # The minority side cannot log a write: it answers UNAVAILABLE, it does not acknowledge.
        status, body = _write_from_inside(HOSTS[isolated], cluster.node_url(isolated), timeout=40)
        assert status == 503 and "UNAVAILABLE" in body, (status, body)
        acked_during = ledger.count()
        time.sleep(3)
        assert ledger.count() > acked_during, "the majority side stopped acknowledging writes"
        _ip("-n", SWITCH, "link", "set", f"eg{TAG}b3", "up")
        t_heal = time.monotonic()
        wait_until(
            lambda: any(o["node_id"] == "m3" for sh in status_of(cluster, 0)["shards"] for o in sh["owners"]),
            60,
            "the healed node owns shards again",
        )
        load.exclude_reads = load.exclude_writes = set()
        time.sleep(2)
    print(
        f"partition: shards moved {moved:.1f} s after the cut; m3 back {time.monotonic() - t_heal:.1f} s after healing"
    )
    assert not load.read_failures, load.read_failures[:5]
    print(json.dumps(check_ledger(cluster, ledger, epochs)))

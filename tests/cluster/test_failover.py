"""The failover suite: real etcd, NATS JetStream and Engram processes on loopback, faults injected
by signals and by wiping a data directory, under a client that keeps a ledger of every
acknowledged write. After each scenario: every acknowledged memory is readable from every serving
owner of its shard, none twice, the owners agree, epochs only increased, and the cluster reported
healthy again within 15 s.

The tests share one cluster and run in file order (each leaves it healthy for the next).
`make stress` (ENGRAM_STRESS=1) runs each scenario longer.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
import urllib.request
from typing import Any

import pytest
from cluster_harness import STRESS, Ledger, Load, check_ledger, http, status_of, wait_converged, wait_until

from tools.cluster.local import LocalCluster

LOAD_SECONDS = 6.0 if STRESS else 2.0
EPOCHS: list[int] = []
LEDGER = Ledger()


def _owners_of(st: dict[str, Any], node: str) -> list[int]:
    return [int(sh.get("shard", 0)) for sh in st["shards"] if any(o["node_id"] == node for o in sh.get("owners", []))]


def test_any_node_serves_any_call(cluster: LocalCluster) -> None:
    st = status_of(cluster, 0)
    assert st["mode"] == "cluster" and st["healthy"] is True
    assert st["shard_count"] == 8 and st["replication_factor"] == 2
    assert st["log"]["engine"] == "nats-jetstream" and st["log"]["members"] == 3
    assert st["control"]["engine"] == "etcd" and st["control"]["members"] == 3 and st["control"]["leader"]
    assert sorted(n["node_id"] for n in st["nodes"]) == ["m1", "m2", "m3"]
    # A write on one node is read back on every node with its token (read-your-writes).
    status, body, token = http(cluster, 0, "POST", "/v1/memories", {"agent_id": "alice", "content": "Alice likes tea"})
    assert status == 200, body
    shard, _, seq = token.partition(":")
    assert shard.isdigit() and int(seq) >= 1
    mid = body["memory"]["id"]
    for i in range(3):
        status, got, _ = http(cluster, i, "GET", f"/v1/memories/{mid}?agent_id=alice", token=token)
        assert status == 200 and got["memory"]["content"] == "Alice likes tea", (i, got)
        status, got, _ = http(cluster, i, "GET", f"/v1/memories/{mid}", token=token)  # found by id alone
        assert status == 200 and got["memory"]["agent_id"] == "alice", (i, got)
        status, got, _ = http(
            cluster,
            i,
            "POST",
            "/v1/memories/recall",
            {"agent_id": "alice", "query": "what does Alice drink"},
            token=token,
        )
        assert status == 200 and got["memories"][0]["id"] == mid, (i, got)
    LEDGER.add("alice", mid, "Alice likes tea", token)
    # Errors travel back unchanged from the owner.
    status, got, _ = http(cluster, 2, "GET", "/v1/memories/0123456789abcdef0123456789abcdef?agent_id=alice")
    assert status == 404 and got["code"] == "NOT_FOUND"
    status, got, _ = http(cluster, 1, "POST", "/v1/memories", {"agent_id": "alice", "content": ""})
    assert status == 400 and got["code"] == "INVALID_ARGUMENT"
    near = {"agent_id": "alice", "content": "Alice likes green tea", "duplicate_policy": "DUPLICATE_POLICY_NEAR"}
    status, got, _ = http(cluster, 1, "POST", "/v1/memories", near)
    assert status == 400 and got["code"] == "FAILED_PRECONDITION" and "cluster mode" in got["message"], got
    # Many agents over every shard; the agent list merges all shards.
    # The client sends back the last token it got: it then reads all its writes, on every shard.
    chain = token
    for k in range(16):
        status, body, chain = http(
            cluster, k % 3, "POST", "/v1/memories", {"agent_id": f"agent-{k}", "content": f"fact {k}"}, token=chain
        )
        assert status == 200, body
        LEDGER.add(f"agent-{k}", body["memory"]["id"], f"fact {k}", chain)
    assert len(chain.split(",")) >= 4, chain  # one entry per shard written
    status, got, _ = http(cluster, 2, "GET", "/v1/agents?page_size=10", token=chain)
    assert status == 200 and got["total_size"] == 17 and len(got["agents"]) == 10
    status, got2, _ = http(
        cluster, 0, "GET", f"/v1/agents?page_size=10&page_token={got['next_page_token']}", token=chain
    )
    assert status == 200 and len(got2["agents"]) == 7 and not got2.get("next_page_token")
    assert [a["agent_id"] for a in got["agents"] + got2["agents"]] == sorted(
        ["alice", *(f"agent-{k}" for k in range(16))]
    )
    # Updates and deletes go through the log too.
    status, body, token = http(
        cluster, 1, "PATCH", f"/v1/memories/{mid}?agent_id=alice&update_mask=importance", {"importance": 0.9}
    )
    assert status == 200, body
    status, got, _ = http(cluster, 2, "GET", f"/v1/memories/{mid}?agent_id=alice", token=token)
    assert status == 200 and abs(got["memory"]["importance"] - 0.9) < 1e-6, got
    print(json.dumps(check_ledger(cluster, LEDGER, EPOCHS)))


def test_api_keys_work_on_every_node(cluster: LocalCluster) -> None:
    status, body, token = http(
        cluster, 0, "POST", "/v1/keys", {"name": "bob's agent", "role": "API_KEY_ROLE_READ_WRITE", "agent_ids": ["bob"]}
    )
    assert status == 200, body
    key = body["key"]
    for i in (1, 2):
        status, got, _ = http(
            cluster,
            i,
            "POST",
            "/v1/memories",
            {"agent_id": "bob", "content": f"bob's note on node {i}"},
            key=key,
            token=token,
        )
        assert status == 200, (i, got)
        LEDGER.add("bob", got["memory"]["id"], f"bob's note on node {i}", "")
        status, got, _ = http(
            cluster, i, "POST", "/v1/memories", {"agent_id": "alice", "content": "not bob's"}, key=key
        )
        assert status == 403 and got["code"] == "PERMISSION_DENIED", got
    status, body, token = http(cluster, 2, "DELETE", f"/v1/keys/{body['api_key']['id']}")
    assert status == 200, body
    time.sleep(0.5)  # every node applies the key log; their key caches expire on revocation
    for i in range(3):
        status, got, _ = http(cluster, i, "GET", "/v1/memories?agent_id=bob", key=key)
        assert status == 401, (i, status, got)


def test_sigkill_a_node_under_load(cluster: LocalCluster) -> None:
    victim = 1
    with Load(cluster, LEDGER) as load:
        load.exclude_reads = {victim}
        time.sleep(LOAD_SECONDS)
        t_kill = time.monotonic()
        cluster.engram[victim].kill()
        # Its agents' recalls succeed again through the survivors within about a lease.
        agents = [a for a in LEDGER.acked if a.startswith("agent-")]

        def all_readable() -> bool:
            for a in agents[:8]:
                status, _, _ = http(
                    cluster, 0, "POST", "/v1/memories/recall", {"agent_id": a, "query": "weather"}, timeout=5
                )
                if status != 200:
                    return False
            return True

        wait_until(all_readable, 15, "recalls through the survivors")
        failover = time.monotonic() - t_kill
        time.sleep(LOAD_SECONDS)
    print(f"failover: recalls served again {failover:.2f} s after SIGKILL")
    # The other owner of each of its shards served all along: no read failed.
    assert not load.read_failures, load.read_failures[:5]
    cluster.restart_node(victim)
    cluster.wait_healthy(30)
    print(json.dumps(check_ledger(cluster, LEDGER, EPOCHS)))


def test_sigstop_past_the_lease_never_serves_stale(cluster: LocalCluster) -> None:
    victim = 2
    before = status_of(cluster, victim)
    shards = _owners_of(before, "m3")
    assert shards
    cluster.engram[victim].signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: "m3" not in [n["node_id"] for n in status_of(cluster, 0)["nodes"] if n.get("healthy")],
            15,
            "m3's lease expires",
        )
        # Writes while m3 sleeps, to the agents of the shards it served.
        from engram_server.cluster.placement import shard_of

        agents = [a for a in LEDGER.acked if shard_of(a, 8) in shards]
        written = []
        for a in agents[:6]:
            status, body, token = http(
                cluster, 0, "POST", "/v1/memories", {"agent_id": a, "content": f"written while m3 slept, for {a}"}
            )
            assert status == 200, body
            LEDGER.add(a, body["memory"]["id"], f"written while m3 slept, for {a}", token)
            written.append((a, body["memory"]["id"], token))
    finally:
        cluster.engram[victim].signal(signal.SIGCONT)
    # At once after waking: every read through m3 sees the writes made while it slept.
    for a, mid, token in written:
        status, got, _ = http(cluster, victim, "GET", f"/v1/memories/{mid}?agent_id={a}", token=token)
        assert status == 200, (a, got)
        status, got, _ = http(cluster, victim, "GET", f"/v1/memories?agent_id={a}&page_size=1000")
        assert status == 200 and mid in [m["id"] for m in got["memories"]], (
            f"m3 served a stale list of {a} after waking"
        )
    print(json.dumps(check_ledger(cluster, LEDGER, EPOCHS)))


def test_wiped_node_rebuilds_from_the_log(cluster: LocalCluster) -> None:
    victim = 0
    cluster.engram[victim].kill()
    shutil.rmtree(cluster.base / "node1" / "data")
    cluster.restart_node(victim)
    cluster.wait_healthy(60)
    print(json.dumps(check_ledger(cluster, LEDGER, EPOCHS)))


def _stream_leader(cluster: LocalCluster, shard: int) -> int:
    import nats

    async def ask() -> str:
        nc = await nats.connect(servers=cluster.nats_client, user=cluster.nats_user, password=cluster.nats_password)
        try:
            info = await nc.jetstream().stream_info(f"ENGRAM_{shard:04d}")
            assert info.cluster is not None
            return str(info.cluster.leader)
        finally:
            await nc.close()

    return int(asyncio.run(ask())[1:]) - 1


def test_sigkill_the_log_leader_of_a_busy_shard(cluster: LocalCluster) -> None:
    from engram_server.cluster.placement import shard_of

    busy = shard_of("agent-0", 8)
    leader = _stream_leader(cluster, busy)
    with Load(cluster, LEDGER):
        time.sleep(LOAD_SECONDS)
        acked_before = LEDGER.count()
        cluster.nats[leader].kill()
        t0 = time.monotonic()
        wait_until(lambda: LEDGER.count() > acked_before + 10, 20, "writes resume after the log leader died")
        print(f"writes resumed {time.monotonic() - t0:.2f} s after the NATS leader of shard {busy} was killed")
        time.sleep(LOAD_SECONDS)
    cluster.nats[leader].start()
    print(json.dumps(check_ledger(cluster, LEDGER, EPOCHS)))


def _etcd_leader(cluster: LocalCluster) -> int:
    ids = []
    for url in cluster.etcd_client:
        req = urllib.request.Request(url + "/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            d = json.loads(r.read())
        ids.append((d["header"]["member_id"], d["leader"]))
    leader = ids[0][1]
    return next(i for i, (member, _) in enumerate(ids) if member == leader)


def test_sigkill_the_etcd_leader(cluster: LocalCluster) -> None:
    leader = _etcd_leader(cluster)
    with Load(cluster, LEDGER) as load:
        time.sleep(LOAD_SECONDS)
        failed_before = LEDGER.failed
        cluster.etcd[leader].kill()
        time.sleep(LOAD_SECONDS + 3)
        assert LEDGER.failed == failed_before, LEDGER.failures[-5:]
        assert not load.read_failures, load.read_failures[:5]
    cluster.etcd[leader].start()
    print(json.dumps(check_ledger(cluster, LEDGER, EPOCHS)))


def test_drain_a_node_without_failed_reads(cluster: LocalCluster) -> None:
    victim = 2
    status, body, _ = http(cluster, 0, "POST", "/v1/cluster/nodes/m3:drain", {})
    assert status == 200 and body["node"]["role"] == "draining", body
    status, body, _ = http(cluster, 0, "POST", "/v1/cluster/nodes/nobody:drain", {})
    assert status == 404, body
    failures_before = len(LEDGER.failures)
    with Load(cluster, LEDGER) as load:  # reads and writes through every node, the draining one too
        # The new owners replay the shards' logs first (about 170 ops/s each on a 2-core machine).
        moved = wait_until(lambda: not _owners_of(status_of(cluster, 0), "m3"), 120, "m3's shards move away")
        print(f"drain: m3's shards moved, make-before-break, in {moved:.1f} s")
        time.sleep(LOAD_SECONDS)
        # As a load balancer would: no new calls, then the node's calls under way finish (a write
        # may wait seconds for its new owners, busy replaying) before it stops.
        load.exclude_reads = load.exclude_writes = {victim}
        wait_until(lambda: load.idle(victim), 60, "the calls under way on m3 finish")
        time.sleep(0.1)  # a read picked m3 just before the exclusion
        cluster.engram[victim].stop()  # it owns nothing now: stopping it fails no call
        time.sleep(LOAD_SECONDS)
    assert not load.read_failures, load.read_failures[:5]
    assert len(LEDGER.failures) == failures_before, LEDGER.failures[failures_before:][:5]
    wait_converged(cluster)
    cluster.restart_node(victim)  # a restarted node is not draining: it gets shards again
    wait_until(lambda: bool(_owners_of(status_of(cluster, 0), "m3")), 30, "m3 owns shards again")
    result = check_ledger(cluster, LEDGER, EPOCHS)
    print(json.dumps(result))
    assert LEDGER.count() > 40


@pytest.fixture(autouse=True)
def _report(request: pytest.FixtureRequest) -> Any:
    yield
    if LEDGER.failures:
        print(f"unacknowledged writes so far: {LEDGER.failed} (last: {LEDGER.failures[-3:]})")

"""Cluster placement: shard of an agent, rendezvous owners, and how the controller changes the map."""

from __future__ import annotations

import random

from engram_server.cluster.placement import CATCHING_UP, SERVING, Owner, ShardMap, agent_key, plan, rendezvous, shard_of


def test_shard_of_is_stable_and_spread() -> None:
    assert shard_of("agent-1", 64) == shard_of("agent-1", 64)
    counts = [0] * 16
    for i in range(16_000):
        counts[shard_of(f"agent-{i}", 16)] += 1
    assert min(counts) > 800 and max(counts) < 1200  # within 20% of the mean


def test_agent_key_is_a_subject_token_without_the_id() -> None:
    k = agent_key("alice@example.com")
    assert k.isalnum() and k.islower() and len(k) == 26
    assert "alice" not in k
    assert k != agent_key("bob")


def test_rendezvous_moves_only_what_the_change_touches() -> None:
    nodes = [f"n{i}" for i in range(5)]
    before = {s: rendezvous(s, nodes, 2) for s in range(256)}
    after = {s: rendezvous(s, [*nodes, "n5"], 2) for s in range(256)}
    moved = [s for s in range(256) if before[s] != after[s]]
    assert all("n5" in after[s] for s in moved)  # a shard moves only to the new node
    assert 0 < len(moved) < 256 * 0.6
    gone = {s: rendezvous(s, nodes[1:], 2) for s in range(256)}
    assert all(gone[s] == before[s] for s in range(256) if "n0" not in before[s])


def _map(shards: int = 8, rf: int = 2) -> ShardMap:
    return ShardMap(0, shards, rf)


def test_first_map_serves_every_shard_at_once() -> None:
    live = {"a": "1", "b": "2", "c": "3"}
    m = plan(_map(), live, {}, {})
    assert m is not None and m.epoch == 1
    assert m.healthy()
    for s in range(8):
        assert [o.node for o in m.owners[s]] == rendezvous(s, sorted(live), 2)
    assert plan(m, live, {}, {}) is None  # nothing changes: no new epoch


def test_make_before_break_on_join() -> None:
    live = {"a": "1", "b": "2"}
    m = plan(_map(), live, {}, {})
    assert m is not None
    last = {s: 100 for s in range(8)}
    live["c"] = "3"
    m2 = plan(m, live, {"a": dict(last), "b": dict(last)}, last)
    assert m2 is not None and m2.epoch == 2
    moving = [s for s in range(8) if "c" in rendezvous(s, ["a", "b", "c"], 2)]
    assert moving
    for s in moving:  # c copies first; the old owners keep serving
        states = {o.node: o.state for o in m2.owners[s]}
        assert states["c"] == CATCHING_UP
        assert sum(1 for st in states.values() if st == SERVING) == 2
    # c has caught up: promoted, and the owner it replaces is dropped
    caught = {"a": dict(last), "b": dict(last), "c": dict(last)}
    m3 = plan(m2, live, caught, last)
    assert m3 is not None and m3.epoch == 3
    for s in range(8):
        assert [o.node for o in m3.owners[s]] == rendezvous(s, ["a", "b", "c"], 2)
        assert all(o.state == SERVING for o in m3.owners[s])


def test_a_lagging_owner_is_not_promoted() -> None:
    m = ShardMap(5, 1, 2, {0: [Owner("a", "1", SERVING), Owner("b", "2", CATCHING_UP)]})
    assert plan(m, {"a": "1", "b": "2"}, {"a": {0: 500}, "b": {0: 10}}, {0: 500}) is None
    m2 = plan(m, {"a": "1", "b": "2"}, {"a": {0: 500}, "b": {0: 499}}, {0: 500}, max_lag=16)
    assert m2 is not None and all(o.state == SERVING for o in m2.owners[0])


def test_dead_node_and_new_incarnation_are_dropped_at_once() -> None:
    m = ShardMap(7, 1, 2, {0: [Owner("a", "1", SERVING), Owner("b", "2", SERVING)]})
    m2 = plan(m, {"a": "1", "b": "9"}, {}, {0: 50})  # b came back as a new incarnation
    assert m2 is not None
    assert [(o.node, o.incarnation, o.state) for o in m2.owners[0]] == [
        ("a", "1", SERVING),
        ("b", "9", CATCHING_UP),
    ] or [(o.node, o.incarnation, o.state) for o in m2.owners[0]] == [("b", "9", CATCHING_UP), ("a", "1", SERVING)]


def test_random_histories_keep_the_invariants() -> None:
    """Epochs only increase; at most RF serving owners of the current incarnations; a shard with
    a serving owner keeps one through any change that leaves that owner alive."""
    rng = random.Random(7)
    names = [f"n{i}" for i in range(6)]
    inc = {n: 0 for n in names}
    live: dict[str, str] = {n: "0" for n in names[:3]}
    m = plan(_map(16, 2), live, {}, {})
    assert m is not None
    last = {s: 0 for s in range(16)}
    for step in range(400):
        r = rng.random()
        if r < 0.15 and len(live) > 1:
            del live[rng.choice(sorted(live))]
        elif r < 0.3:
            n = rng.choice(names)
            inc[n] += 1
            live[n] = str(inc[n])
        for s in last:
            last[s] += rng.randint(0, 3)
        progress = {n: {s: last[s] - rng.randint(0, 2) for s in last} for n in live}
        before = m
        nxt = plan(m, dict(live), progress, dict(last), max_lag=2)
        if nxt is None:
            continue
        assert nxt.epoch == before.epoch + 1
        for s, owners in nxt.owners.items():
            serving = [o for o in owners if o.state == SERVING]
            assert len(serving) <= 2
            assert all(live.get(o.node) == o.incarnation for o in owners)
            kept = [o for o in before.serving(s) if live.get(o.node) == o.incarnation]
            if kept:
                assert nxt.serving(s), f"shard {s} lost its last serving owner at step {step}"
        m = nxt

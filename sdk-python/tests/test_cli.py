"""The `engram` CLI end to end against the real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import engram

from .conftest import ENGRAM_CLI

pytestmark = pytest.mark.server


def run(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENGRAM_CLI, *args], env=env, capture_output=True, text=True, input=input,
                          timeout=120)


def test_memory_commands(cli_env: dict[str, str], agent_id: str) -> None:
    r = run(cli_env, "--agent", agent_id, "store", "The CLI stores memories", "--tag", "cli",
            "--importance", "0.7", "--type", "semantic", "--metadata", '{"a": 1}', "--json")
    assert r.returncode == 0, r.stderr
    memory = json.loads(r.stdout)["memory"]
    mid = memory["id"]
    assert memory["memory_type"] == "MEMORY_TYPE_SEMANTIC" and memory["tags"] == ["cli"]

    r = run(cli_env, "store", "-", "--agent", agent_id, input="from stdin\n")
    assert r.returncode == 0 and r.stdout.startswith("stored ")

    r = run(cli_env, "--agent", agent_id, "recall", "what does the CLI do?", "-n", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["memories"][0]["id"] == mid

    r = run(cli_env, "--agent", agent_id, "recall", "CLI")  # human table
    assert r.returncode == 0 and "The CLI stores memories" in r.stdout

    r = run(cli_env, "get", mid, "--json")
    assert json.loads(r.stdout)["content"] == "The CLI stores memories"
    r = run(cli_env, "update", mid, "--content", "The CLI updates memories", "--json")
    assert json.loads(r.stdout)["memory"]["version"] == 2
    r = run(cli_env, "history", mid, "--json")
    assert len(json.loads(r.stdout)["versions"]) == 2

    r = run(cli_env, "--agent", agent_id, "list", "--json")
    assert json.loads(r.stdout)["total_size"] == 2
    r = run(cli_env, "--agent", agent_id, "list")
    assert "2 of 2 memories" in r.stdout

    r = run(cli_env, "--agent", agent_id, "forget", "--tag", "cli", "--dry-run", "--json")
    assert json.loads(r.stdout)["matched_count"] == 1
    r = run(cli_env, "delete", mid)
    assert r.returncode == 0 and "deleted" in r.stdout


def test_exit_codes(cli_env: dict[str, str], agent_id: str) -> None:
    assert run(cli_env, "get", "no-such-memory").returncode == 3
    assert run(cli_env, "--agent", agent_id, "forget").returncode == 2  # empty filter: usage
    assert run(cli_env, "store").returncode == 2  # missing argument
    assert run(cli_env, "--agent", agent_id, "store", "x", "--type", "bogus").returncode == 2
    bad = {**cli_env, "ENGRAM_API_KEY": "wrong-key-0123456789"}
    assert run(bad, "--agent", agent_id, "list").returncode == 4
    down = {**cli_env, "ENGRAM_URL": "http://127.0.0.1:9"}
    r = run(down, "health")
    assert r.returncode == 5 and "UNAVAILABLE" in r.stderr


def test_export_import_between_agents(cli_env: dict[str, str], agent_id: str, tmp_path: Path) -> None:
    assert run(cli_env, "--agent", agent_id, "store", "memory to move 0", "--tag", "move").returncode == 0
    with engram.Client(cli_env["ENGRAM_URL"], api_key=cli_env["ENGRAM_API_KEY"]) as client:
        client.batch_store([{"agent_id": agent_id, "content": f"memory to move {i}"} for i in range(1, 12)])
    dump = tmp_path / "dump.jsonl"
    r = run(cli_env, "--agent", agent_id, "export", "-o", str(dump))
    assert r.returncode == 0, r.stderr
    assert "exported 12 memories" in r.stderr
    lines = dump.read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["agent_id"] == agent_id for line in lines)

    target = agent_id + "-imported"
    # Memory ids are unique per server: copy into another agent with an id prefix.
    args = ["import", str(dump), "--agent", target, "--id-prefix", "copy-", "--json"]
    r = run(cli_env, *args, "--batch", "5")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"imported_count": 12, "skipped_count": 0, "read_count": 12}
    r = run(cli_env, *args)  # idempotent: run twice, nothing new
    assert json.loads(r.stdout) == {"imported_count": 0, "skipped_count": 12, "read_count": 12}

    src = json.loads(run(cli_env, "--agent", agent_id, "list", "--limit", "0", "--json").stdout)
    dst = json.loads(run(cli_env, "--agent", target, "list", "--limit", "0", "--json").stdout)
    assert src["total_size"] == dst["total_size"] == 12
    assert {"copy-" + m["id"] for m in src["memories"]} == {m["id"] for m in dst["memories"]}
    assert sorted(m["content"] for m in src["memories"]) == sorted(m["content"] for m in dst["memories"])

    # Resumable: a partial import (first 5 lines) completed by re-running the whole file.
    partial = tmp_path / "partial.jsonl"
    partial.write_text("\n".join(lines[:5]) + "\n")
    r = run(cli_env, "import", str(partial), "--agent", target + "-2", "--id-prefix", "p-", "--json")
    assert json.loads(r.stdout)["imported_count"] == 5
    r = run(cli_env, "import", str(dump), "--agent", target + "-2", "--id-prefix", "p-", "--json")
    assert json.loads(r.stdout) == {"imported_count": 7, "skipped_count": 5, "read_count": 12}

    # Move: export piped into import on stdin, after erasing the source (same ids).
    r = run(cli_env, "--agent", agent_id, "export")
    assert run(cli_env, "agents", "delete", agent_id, "--yes").returncode == 0
    r2 = run(cli_env, "import", "-", "--agent", agent_id + "-moved", input=r.stdout)
    assert r2.returncode == 0 and "imported 12" in r2.stderr, r2.stderr

    r = run(cli_env, "agents", "--json")
    counts = {a["agent_id"]: a.get("memory_count", 0) for a in json.loads(r.stdout)["agents"]}
    assert counts[agent_id + "-moved"] == counts[target] == 12 and agent_id not in counts
    r = run(cli_env, "agents", "show", target, "--json")
    assert json.loads(r.stdout)["memory_count"] == 12
    assert run(cli_env, "agents", "delete", target + "-2", "--yes").returncode == 0


def test_keys_health_info_and_config_file(cli_env: dict[str, str], tmp_path: Path, agent_id: str) -> None:
    r = run(cli_env, "keys", "create", "cli-key", "--role", "read_only", "--agent", agent_id, "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    key_id = created["api_key"]["id"]
    r = run(cli_env, "keys", "list", "--json")
    assert key_id in {k["id"] for k in json.loads(r.stdout)["api_keys"]}
    assert run(cli_env, "keys", "list").returncode == 0
    assert run(cli_env, "keys", "revoke", key_id).returncode == 0

    assert "healthy" in run(cli_env, "health").stdout
    r = run(cli_env, "cluster", "status")
    assert r.returncode == 0 and "healthy: single, 1/1 nodes" in r.stdout, r.stdout + r.stderr
    assert json.loads(run(cli_env, "cluster", "status", "--json").stdout)["mode"] == "single"
    r = run(cli_env, "cluster", "drain", "n1")
    assert r.returncode != 0 and "single node" in r.stderr, r.stderr
    assert run(cli_env, "--version").stdout.strip() == f"engram {engram.__version__}"
    r = run(cli_env, "info", "--stats", "--json")
    assert json.loads(r.stdout)["info"]["api_version"] == "v1"
    assert run(cli_env, "info").returncode == 0

    config = tmp_path / "client.toml"
    env = {**cli_env}
    url, key = env.pop("ENGRAM_URL"), env.pop("ENGRAM_API_KEY")
    config.write_text(f'url = "{url}"\napi_key = "{key}"\nagent_id = "{agent_id}"\ntransport = "grpc"\n')
    env["ENGRAM_CONFIG"] = str(config)
    r = run(env, "store", "configured by file", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["memory"]["agent_id"] == agent_id


def test_store_outcomes_and_consolidate(cli_env: dict[str, str], agent_id: str) -> None:
    r = run(cli_env, "--agent", agent_id, "store", "Timezone: Europe/Paris", "--key", "tz")
    assert r.returncode == 0 and r.stdout.startswith("stored "), r.stderr
    mid = r.stdout.split()[1]
    r = run(cli_env, "--agent", agent_id, "store", "Timezone: Asia/Tokyo", "--key", "tz")
    assert r.stdout.strip() == f"replaced {mid} (key tz; version 2)"
    r = run(cli_env, "--agent", agent_id, "store", "timezone: asia/tokyo.")
    assert r.stdout.strip() == f"merged into {mid} (a duplicate; version 3)"
    r = run(cli_env, "--agent", agent_id, "store", "Timezone: Asia/Tokyo", "--duplicate-policy", "off", "--json")
    copy = json.loads(r.stdout)
    assert copy["outcome"] == "STORE_OUTCOME_CREATED" and copy["memory"]["id"] != mid
    r = run(cli_env, "--agent", agent_id, "store", "x", "--duplicate-policy", "fuzzy")
    assert r.returncode == 2 and "off, exact or near" in r.stderr

    r = run(cli_env, "--agent", agent_id, "consolidate", "--dry-run")
    assert r.returncode == 0 and "would merge 1 memory in 1 group (dry run)" in r.stdout, r.stdout
    r = run(cli_env, "--agent", agent_id, "consolidate", "--threshold", "0.97", "--json")
    merged = json.loads(r.stdout)
    assert merged["merged_count"] == 1 and merged["groups"][0]["keep_id"] == mid
    r = run(cli_env, "--agent", agent_id, "consolidate", "--threshold", "0.2")
    assert r.returncode == 2 and "INVALID_ARGUMENT" in r.stderr


def test_watch(cli_env: dict[str, str], agent_id: str) -> None:
    r = run(cli_env, "--agent", agent_id, "store", "watched from the CLI")
    mid = r.stdout.split()[1]
    run(cli_env, "delete", mid)
    r = run(cli_env, "--agent", agent_id, "watch", "--from-start", "--count", "2")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["type"] for e in events] == ["MEMORY_EVENT_TYPE_CREATED", "MEMORY_EVENT_TYPE_DELETED"]
    assert all(e["memory_id"] == mid for e in events)
    assert f"engram watch --after {events[1]['cursor']}" in r.stderr

    r = run(cli_env, "--agent", agent_id, "watch", "--after", events[0]["cursor"], "-n", "1")
    assert [json.loads(line)["cursor"] for line in r.stdout.splitlines()] == [events[1]["cursor"]]

    assert run(cli_env, "watch", "--after", "yesterday").returncode == 2
    assert run(cli_env, "watch", "--after", "1", "--from-start").returncode == 2
    r = run(cli_env, "--agent", agent_id, "watch", "--after", "99999999999999")
    assert r.returncode == 2 and "INVALID_ARGUMENT" in r.stderr  # ahead of the server

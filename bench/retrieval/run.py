"""Retrieval quality on LoCoMo through the public API, next to a plain BM25 baseline.

    .venv/bin/python -m bench.retrieval.run [--data PATH] [--mode hybrid|vector|keyword ...]

Stores one memory per dialog turn (one agent per conversation, batched over REST; each turn with
its session as `session_id` and the session's date as `event_time`), recalls with
each question of categories 1-4, and reports recall@5, recall@10 and nDCG@10 per category and
overall. Any LoCoMo-format file can be given with --data.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ..common import ROOT_KEY, running_server, write_result
from .locomo import DEFAULT_DATA, Scoreboard, Turn, bm25_baseline, load

MODES = {"hybrid": "RECALL_MODE_HYBRID", "vector": "RECALL_MODE_VECTOR", "keyword": "RECALL_MODE_KEYWORD"}


def _store_request(agent: str, turn: Turn) -> dict[str, Any]:
    """One dialog turn as an agent would store it: said in a session, at a time."""
    req: dict[str, Any] = {
        "agent_id": agent,
        "content": turn.text,
        "session_id": turn.session,
        "metadata": {"dia_id": turn.dia_id},
    }
    if turn.event_time:
        req["event_time"] = datetime.fromtimestamp(turn.event_time, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return req


def evaluate(base_url: str, data: Path, modes: list[str], k: int = 10) -> dict[str, Any]:
    conversations = load(data)
    boards = {mode: Scoreboard() for mode in modes}
    with httpx.Client(base_url=base_url, timeout=300, headers={"authorization": f"Bearer {ROOT_KEY}"}) as http:
        for conv in conversations:
            agent = f"locomo-{conv.sample_id}"
            ids_to_dia: dict[str, str] = {}
            for i in range(0, len(conv.turns), 256):
                chunk = conv.turns[i : i + 256]
                body = {"requests": [_store_request(agent, t) for t in chunk]}
                resp = http.post("/v1/memories:batchStore", json=body)
                resp.raise_for_status()
                for turn, mem in zip(chunk, resp.json()["memories"], strict=True):
                    ids_to_dia[mem["id"]] = turn.dia_id
            for q in conv.questions:
                for mode in modes:
                    resp = http.post(
                        "/v1/memories/recall",
                        json={"agent_id": agent, "query": q.question, "top_k": k, "mode": MODES[mode]},
                    )
                    resp.raise_for_status()
                    ranked = [ids_to_dia[m["id"]] for m in resp.json().get("memories", [])]
                    boards[mode].add(q.category, ranked, q.evidence)
    return {mode: board.summary() for mode, board in boards.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--mode", nargs="+", default=["hybrid", "vector", "keyword"], choices=sorted(MODES))
    args = parser.parse_args()
    baseline = bm25_baseline(load(args.data))
    with running_server() as server:
        engram = evaluate(server.base_url, args.data, args.mode)
    print(f"{'':14}{'recall@5':>10}{'recall@10':>11}{'nDCG@10':>9}")
    rows = [("bm25 baseline", baseline)] + [(f"engram {m}", r) for m, r in engram.items()]
    for name, summary in rows:
        o = summary["overall"]
        print(f"{name:14}{o['recall@5']:>10.1f}{o['recall@10']:>11.1f}{o['ndcg@10']:>9.1f}")
    write_result("retrieval", {"data": str(args.data.name), "bm25_baseline": baseline, "engram": engram})


if __name__ == "__main__":
    main()

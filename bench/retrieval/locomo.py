"""LoCoMo-format data sets and the retrieval metrics used on them.

Format (see the data's README): a JSON list of samples, each with `conversation` (`session_N`
lists of turns `{speaker, dia_id, text[, blip_caption]}`) and `qa` (`question`, `evidence` =
list of dia_ids, `category`). One memory per dialog turn; a question's gold memories are its
evidence turns. Categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial
(excluded). The data is read from where it lies; it is never copied into the project.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def _default_data() -> Path:
    """shared/data/locomo/locomo-dev.json beside the checkout (or a worktree's parent folders)."""
    rel = Path("shared") / "data" / "locomo" / "locomo-dev.json"
    here = Path(__file__).resolve()
    for parent in here.parents[3:]:
        if (parent / rel).exists():
            return parent / rel
    return here.parents[3] / rel


DEFAULT_DATA = _default_data()


@dataclass(frozen=True)
class Turn:
    dia_id: str
    text: str  # "Speaker: text [shares a photo of ...]"
    session_date: str  # as the data writes it: "1:56 pm on 8 May, 2023"
    session: str  # "session_3": stored as the memory's session_id
    event_time: float  # the session's start plus one second per turn (keeps the turns' order)


def parse_session_date(text: str) -> float:
    """ "1:56 pm on 8 May, 2023" → Unix seconds (UTC); 0.0 when missing or unreadable."""
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Question:
    question: str
    category: int
    evidence: frozenset[str]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]


_DIA = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


def normalise_evidence(raw: list[str]) -> frozenset[str]:
    """`"D8:6; D9:17"`, `"D:11:26"`, `"D30:05"` → {"D8:6", "D9:17"}, {"D11:26"}, {"D30:5"}."""
    out: set[str] = set()
    for item in raw:
        for session, turn in _DIA.findall(str(item)):
            out.add(f"D{int(session)}:{int(turn)}")
    return frozenset(out)


def load(path: Path = DEFAULT_DATA) -> list[Conversation]:
    samples = json.loads(Path(path).read_text())
    conversations: list[Conversation] = []
    for sample in samples:
        conv = sample["conversation"]
        turns: list[Turn] = []
        session_keys = sorted((k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1]))
        for key in session_keys:
            date = str(conv.get(f"{key}_date_time", ""))
            start = parse_session_date(date)
            for i, turn in enumerate(conv[key]):
                text = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):
                    text += f" [shares {turn['blip_caption']}]"
                dia = normalise_evidence([turn["dia_id"]])
                turns.append(
                    Turn(
                        dia_id=next(iter(dia)) if dia else turn["dia_id"],
                        text=text,
                        session_date=date,
                        session=key,
                        event_time=start + i if start else 0.0,
                    )
                )
        questions = [
            Question(
                question=str(q["question"]),
                category=int(q["category"]),
                evidence=normalise_evidence(q.get("evidence", [])),
            )
            for q in sample["qa"]
            if int(q["category"]) in CATEGORIES and q.get("evidence")
        ]
        conversations.append(
            Conversation(
                sample_id=str(sample["sample_id"]), turns=turns, questions=[q for q in questions if q.evidence]
            )
        )
    return conversations


def recall_at(ranked: list[str], gold: frozenset[str], k: int) -> float:
    return len(gold.intersection(ranked[:k])) / len(gold)


def ndcg_at(ranked: list[str], gold: frozenset[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in gold)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal if ideal else 0.0


class Scoreboard:
    """Accumulates recall@5, recall@10 and nDCG@10 per category and overall (in percent)."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, float, float, float]] = []

    def add(self, category: int, ranked: list[str], gold: frozenset[str]) -> None:
        self._rows.append(
            (category, recall_at(ranked, gold, 5), recall_at(ranked, gold, 10), ndcg_at(ranked, gold, 10))
        )

    def summary(self) -> dict[str, dict[str, float]]:
        groups: dict[str, list[tuple[int, float, float, float]]] = {"overall": self._rows}
        for cat, name in CATEGORIES.items():
            groups[name] = [r for r in self._rows if r[0] == cat]
        out: dict[str, dict[str, float]] = {}
        for name, rows in groups.items():
            n = len(rows) or 1
            out[name] = {
                "questions": len(rows),
                "recall@5": 100 * sum(r[1] for r in rows) / n,
                "recall@10": 100 * sum(r[2] for r in rows) / n,
                "ndcg@10": 100 * sum(r[3] for r in rows) / n,
            }
        return out


def bm25_baseline(conversations: list[Conversation], k: int = 10) -> dict[str, dict[str, float]]:
    """Plain BM25 (bm25s defaults, English stopwords, Snowball stemmer) over "Speaker: text"."""
    import bm25s  # lazy: only the harnesses need it
    import Stemmer

    stemmer = Stemmer.Stemmer("english")

    board = Scoreboard()
    for conv in conversations:
        corpus = [t.text for t in conv.turns]
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
        )
        for q in conv.questions:
            docs, _scores = retriever.retrieve(
                bm25s.tokenize([q.question], stopwords="en", stemmer=stemmer, show_progress=False),
                k=min(k, len(corpus)),
                show_progress=False,
            )
            board.add(q.category, [conv.turns[int(i)].dia_id for i in docs[0]], q.evidence)
    return board.summary()

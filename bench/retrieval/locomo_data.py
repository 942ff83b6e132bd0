"""Reads the LoCoMo split (evaluation only: the data stays outside the repository)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path("/work/shared/data/locomo/locomo-dev.json")


@dataclass
class Turn:
    id: str
    speaker: str
    text: str  # with the photo caption appended when the turn shares one
    raw_text: str  # the turn as spoken
    session_date: str

    @property
    def memory_text(self) -> str:
        return f"{self.speaker}: {self.text}"

    @property
    def plain_text(self) -> str:
        return f"{self.speaker}: {self.raw_text}"


@dataclass
class Question:
    question: str
    evidence: list[str]
    category: int


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]


_ID = re.compile(r"D:?(\d+):0*(\d+)")


def normalise_evidence(raw: list[str]) -> list[str]:
    """'D8:6; D9:17' -> ['D8:6', 'D9:17'], 'D:11:26' -> 'D11:26', 'D30:05' -> 'D30:5'."""
    out: list[str] = []
    for item in raw:
        for m in _ID.finditer(item):
            out.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return list(dict.fromkeys(out))


def load(path: Path = DEFAULT_PATH, categories: tuple[int, ...] = (1, 2, 3, 4)) -> list[Conversation]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    convs: list[Conversation] = []
    for item in data:
        conv = item["conversation"]
        turns: list[Turn] = []
        n = 1
        while f"session_{n}" in conv:
            date = conv.get(f"session_{n}_date_time", "")
            for t in conv[f"session_{n}"]:
                text = t["text"]
                if t.get("blip_caption"):
                    text = f"{text} [shares a photo: {t['blip_caption']}]"
                (tid,) = normalise_evidence([t["dia_id"]]) or [t["dia_id"]]
                turns.append(Turn(tid, t["speaker"], text, t["text"], date))
            n += 1
        qs = [
            Question(
                q["question"],
                normalise_evidence(q.get("evidence", [])),
                int(q["category"]),
            )
            for q in item["qa"]
            if int(q["category"]) in categories
        ]
        convs.append(Conversation(item["sample_id"], turns, [q for q in qs if q.evidence]))
    return convs

"""Contextual embeddings: a conversational memory's vector carries who said it and what came before.

Speaker. A memory whose content starts with a short label and a colon, as transcripts write a
turn ("Nate: I just got a dog!", "user: ..."), is embedded as

    own = normalise(e(content) + s * e(label))

with s = `EngineConfig.speaker_embedding_weight` (0.5 by default, 0 turns it off). A turn says
"I" for its speaker, which the model cannot resolve: "What pets does Nate have?" shares nothing
with "Nate: I just got a dog" but the name, and in a long turn the name is one token among many.
Adding the label's own vector makes the speaker part of what every turn of theirs is about.
Label vectors are cached (a conversation has few speakers), so this costs almost no model time.
A label is 1 to 40 characters without a line break or sentence punctuation and at most four
words, followed by ": " (so "http://..." or a sentence with a colon later on are not labels).

In a conversation stored one turn per memory, a reply means little alone ("Coconut, for sure!"
answers "What's your favourite ice cream?"). A memory with a `session_id` therefore gets the
vector

    v_i = normalise(e_i + w * v_prev)

where e_i is the model's embedding of its own content and v_prev the stored vector of the memory
just before it in its session (order (event_time, created_at, id), as `sessions.py` keeps it).
Because v_prev is itself contextual, the context decays geometrically: the previous turn counts
w, the one before about w^2, ... The memory's own text always dominates (w < 1), so a memory
whose own words match a query is still found by them. w = `EngineConfig.contextual_embedding_weight`
(0.5 by default, 0 turns it off). The stored content is unchanged; only the vector differs.

Why a mix of vectors and not an embedding of the previous turn's text together with this one:
the mix costs no model time (the previous vector is read from the index), while embedding two
turns per memory doubles the tokens the model runs on every store. It also ranked better on the
LoCoMo dev split (docs/design/recall.md has the ablation): text concatenation weights the two
turns about equally, which blurs what the memory itself says.

Where the previous memory comes from:
* a batch: its memories are ordered by their session keys first, so the turns of one session
  stored together chain in time order whatever their order in the request;
* otherwise the session index (the memory stored just before in time, even if it arrived later
  than others: the lookup is by event time, not by arrival).

Limits (documented, not fixed): a memory that arrives *before* an existing one in its session's
time order does not change that one's vector (no re-embedding of stored memories), and an update
that changes only `session_id` or `event_time` keeps the vector it had.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .agent import AgentState
    from .models import Memory

DEFAULT_CONTEXTUAL_EMBEDDING_WEIGHT = 0.5
DEFAULT_SPEAKER_EMBEDDING_WEIGHT = 0.5

_LABEL = re.compile(r"([^\n:.!?]{1,40}):\s")


def speaker_of(content: str) -> str:
    """The label a transcript turn starts with ("Nate: ..." -> "Nate"), or ""."""
    m = _LABEL.match(content)
    if m is None:
        return ""
    label = m.group(1).strip()
    return label if label and len(label.split()) <= 4 else ""


class SpeakerVectors:
    """Embeds memory contents with their speaker's name mixed in; caches the names' vectors."""

    def __init__(self, max_cached: int = 4096) -> None:
        self._cache: dict[tuple[str, str], np.ndarray] = {}
        self._max = max_cached
        self._lock = threading.Lock()

    def embed(self, embedder: Any, contents: Sequence[str], weight: float) -> np.ndarray:
        vecs = np.asarray(embedder.embed_documents(list(contents)), dtype=np.float32)
        if weight <= 0 or len(contents) == 0:
            return vecs
        labels = [speaker_of(c) for c in contents]
        if not any(labels):
            return vecs
        model = str(getattr(embedder, "model_id", ""))
        with self._lock:
            have = {lb: self._cache.get((model, lb)) for lb in set(labels) if lb}
        missing = sorted(lb for lb, v in have.items() if v is None)
        if missing:
            got = np.asarray(embedder.embed_documents(missing), dtype=np.float32)
            with self._lock:
                if len(self._cache) + len(missing) > self._max:
                    self._cache.clear()
                for lb, v in zip(missing, got, strict=True):
                    self._cache[(model, lb)] = v
                    have[lb] = v
        out = vecs.copy()
        for i, lb in enumerate(labels):
            sv = have.get(lb) if lb else None
            if sv is not None:
                out[i] = mix(vecs[i], sv, weight)
        return out


Key = tuple[float, float, str]  # (event_time, created_at, id): the session order


def mix(own: np.ndarray, previous: np.ndarray | None, weight: float) -> np.ndarray:
    """normalise(own + weight * previous); own unchanged without a previous vector."""
    if previous is None or weight <= 0:
        return own
    v = np.asarray(own, dtype=np.float32) + np.float32(weight) * np.asarray(previous, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else own


def contextual_vectors(
    keys: Sequence[Key],
    sessions: Sequence[str],
    vecs: np.ndarray,
    weight: float,
    previous_of: Callable[[str, Key], Key | None],
    vector_of: Callable[[str], np.ndarray | None],
) -> np.ndarray:
    """The contextual vectors of a batch (rows as given; vecs are the model's own embeddings).

    previous_of(session, key): the key of the stored memory just before `key` in `session`, or
    None; vector_of(id): its stored vector, or None."""
    out = np.array(vecs, dtype=np.float32, copy=True)
    if weight <= 0 or not any(sessions):
        return out
    order = sorted((i for i in range(len(keys)) if sessions[i]), key=lambda i: (sessions[i], keys[i]))
    last: dict[str, tuple[Key, np.ndarray]] = {}  # session -> the batch's latest so far
    for i in order:
        s = sessions[i]
        stored = previous_of(s, keys[i])
        in_batch = last.get(s)
        prev: np.ndarray | None
        # The batch's own vector wins when it is the later one, or the very memory stored (a
        # background re-embedding replaces stored vectors in session order).
        if in_batch is not None and (stored is None or in_batch[0] >= stored):
            prev = in_batch[1]
        else:
            prev = vector_of(stored[2]) if stored is not None else None
        out[i] = mix(out[i], prev, weight)
        last[s] = (keys[i], out[i])
    return out


def contextualise(st: AgentState, mems: Sequence[Memory], vecs: np.ndarray, weight: float) -> np.ndarray:
    """The Engine's write-path hook: contextual vectors for memories about to be written to `st`.
    Called with st.lock held (reads the session index and the vector index)."""
    if weight <= 0 or not any(m.session_id for m in mems):
        return np.asarray(vecs, dtype=np.float32)
    entries = st.entries
    vindex = st.vindex

    def previous_of(session: str, key: Key) -> Key | None:
        pid = st.sessions.previous(session, key, entries)
        if pid is None:
            return None
        e = entries.get(pid)
        return (e.event_time, e.created_at, e.id) if e is not None else None

    def vector_of(mid: str) -> np.ndarray | None:
        return vindex.vector(mid) if vindex is not None else None

    return contextual_vectors(
        [(m.event_time, m.created_at, m.id) for m in mems],
        [m.session_id for m in mems],
        np.asarray(vecs, dtype=np.float32),
        weight,
        previous_of,
        vector_of,
    )

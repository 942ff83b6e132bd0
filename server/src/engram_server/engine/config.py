"""Engine configuration (the server's Config builds one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EngineConfig:
    data_dir: Path
    encryption_key: bytes | None = None  # 32 bytes; None → resolve from key_file
    encryption_key_file: Path | None = None  # None → default under the user's config dir
    embedding_model_path: Path | None = None  # None → bundled all-MiniLM-L6-v2
    # Bundled model precision: "int8" (faster), "float32" (reference weights), or "auto": what an
    # existing data directory's vectors were made with, int8 for a new one. A different precision
    # than the stored vectors' is a model change (see reembed_on_model_change).
    embedding_precision: str = "auto"
    embedding_threads: int = 2
    embedding_arena: bool = False  # onnxruntime's memory arena (keeps peak activations allocated)
    worker_threads: int = 4
    # Agents (most recently active first) loaded in the background at start-up: their first
    # recall after a restart then does not wait for the load (about 1 s at 100k memories).
    preload_agents: int = 4
    seal_threshold: int = 20_000  # vectors in a mutable segment before it is sealed into a graph
    decay_half_life_days: dict[str, float] = field(
        default_factory=lambda: {"episodic": 30.0, "semantic": 365.0, "procedural": 365.0, "working": 1.0}
    )
    background_interval_seconds: float = 30.0
    # Access counts and last-access times live in memory (recall and reads return them at once)
    # and are written into the records at most this often, and at close. Each write rewrites a
    # whole record, so coalescing the accesses of a busy working set saves most of that work; a
    # crash loses at most this many seconds of access counts, never a memory.
    access_flush_seconds: float = 10.0
    # How much of a hit's relevance its session neighbours receive in recall (0 = off; fusion.py).
    session_context_weight: float = 0.4
    # A memory with a session_id is embedded as normalise(own + w * vector of its session
    # predecessor) (context_embedding.py; 0 = off). Changes vectors written from then on only.
    contextual_embedding_weight: float = 0.5
    # A memory whose content starts with a speaker label ("Nate: ...") is embedded as
    # normalise(e(content) + w * e(label)) (context_embedding.py; 0 = off).
    speaker_embedding_weight: float = 0.5
    # Re-embed every memory at open when the data dir's vectors come from another model
    # (otherwise opening refuses with FailedPrecondition).
    reembed_on_model_change: bool = False
    # The change stream (events.py): how long changes are kept for watchers to resume from, and
    # at most how many. 0 seconds: no change stream (nothing is logged).
    event_retention_seconds: float = 7 * 86400.0
    max_retained_events: int = 1_000_000
    model_cache_dir: Path | None = None  # float32 / int8 model build cache; None → $XDG_CACHE_HOME/engram
    numba_cache_dir: Path | None = None  # for the index build worker

"""The Engine: the one object the service layer talks to.

It opens a data directory and composes the parts, each a module with one job:

    agent_store  the agents in memory; commits (group-committed, synced) and reads
    writes       store (upserts, duplicates), update, delete, forget
    events       the change log (WatchMemories)
    reads        by id, versions, pages
    recall       the recall pipeline
    graph        links and traversal
    bulk         export, import, consolidation
    directory    agents: list, inspect, erase
    key_store    API key records
    maintenance  background work and re-embedding
    access       access counts

CONTRACT (shared with the service layer; change only together): every method is synchronous
and thread-safe; the service layer calls it from `Engine.executor`, never on the event loop,
with requests it has validated (service/validation.py). Errors are `engine.errors.*`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import codec, migrations
from .access import AccessTracker
from .agent_store import AgentStore
from .bulk import Bulk
from .config import EngineConfig
from .crypto import Cipher, resolve_or_create_key
from .directory import AGENT_RECORDS, Directory
from .embedding import family_of
from .errors import FailedPrecondition
from .events import EventLog
from .events import agent_suffix as event_suffix
from .graph import Graph
from .index_worker import IndexBuilder
from .key_store import ApiKeyStore
from .keyspace import Keyspace
from .lazy_embedder import LazyEmbedder, TextEmbedder
from .maintenance import Maintenance
from .models import (
    AgentInfo,
    ApiKeyRecord,
    DuplicateGroup,
    EngineStats,
    EventPage,
    ForgetResult,
    Link,
    ListPage,
    Memory,
    MemoryFilter,
    MemoryGraph,
    MemoryPatch,
    NewMemory,
    RecallQuery,
    RecallResult,
    StoreOutcome,
)
from .reads import Reads
from .recall import Recall
from .storage import CF_META, Storage
from .writes import META_EMBEDDING, Writes

log = logging.getLogger(__name__)


class Engine:
    executor: ThreadPoolExecutor  # bounded pool for CPU/IO work; size from config

    def __init__(
        self, config: EngineConfig, storage: Storage, keyspace: Keyspace, embedder: TextEmbedder | None = None
    ) -> None:
        self.config = config
        self.storage = storage
        self.executor = ThreadPoolExecutor(max(1, config.worker_threads), thread_name_prefix="engram-engine")
        self._embedder = LazyEmbedder(config, embedder)
        self._builder: IndexBuilder | None = None
        self._started = time.monotonic()
        self._closed = False
        self._agents = AgentStore(storage, keyspace, self._embedder, self._get_builder, config.seal_threshold)
        self._agents.recipe = self.recipe
        self._access = AccessTracker(self._agents)
        self._events = EventLog(storage, config.event_retention_seconds, config.max_retained_events)
        self._writes = Writes(self._agents, self._embedder, config, self._events)
        self._reads = Reads(self._agents)
        self._recall = Recall(self._agents, self._embedder, self._access, config)
        self._graph = Graph(self._agents)
        self._bulk = Bulk(self._agents, self._writes, self._events)
        self._directory = Directory(self._agents, self._access, self._events)
        self._keys = ApiKeyStore(storage)
        self._maintenance = Maintenance(
            self._agents, self._writes, self._access, self._embedder, config, self._events
        )

    # --- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, config: EngineConfig, *, embedder: TextEmbedder | None = None, background: bool = True) -> Engine:
        """Open (or create) the data directory. Raises WrongEncryptionKey without touching
        anything when the key does not match. Fast: heavy imports and index loads are lazy.

        embedder: the model to use instead of the configured ONNX one (tests inject a small
        one); the configured one loads on warm_up() or first use."""
        db = Path(config.data_dir) / "db"
        # A key is generated only for a new data directory: an existing one has its key already,
        # and a made-up one would only be refused (and left behind).
        key, created = resolve_or_create_key(
            config.encryption_key, config.encryption_key_file, create=not (db / "CURRENT").exists()
        )
        try:
            storage = Storage.open(db, Cipher(key))
        except BaseException:
            if created is not None:
                created.unlink(missing_ok=True)
            raise
        try:
            eng = cls(config, storage, migrations.prepare(storage), embedder)
            needs_reembed = eng._check_model()
        except BaseException:
            storage.close()
            raise
        if needs_reembed:
            eng._maintenance.reembed_all()
        if background:
            eng._maintenance.start()
        return eng

    @property
    def recipe(self) -> str:
        """How new vectors are made: the model and the context mixed in (context_embedding.py).
        An agent whose vectors were made otherwise is re-embedded in the background."""
        c = self.config
        return f"{self._embedder.model_id};ctx={c.contextual_embedding_weight};spk={c.speaker_embedding_weight}"

    def _check_model(self) -> bool:
        """Compare the configured model with the data directory's; True when every vector must
        be made again at start-up (and that is allowed). A model of the same family (its
        vectors comparable, embedding.family_of) is re-embedded in the background instead."""
        raw = self.storage.get(CF_META, META_EMBEDDING)
        if raw is None:
            return False
        stored = json.loads(raw)
        self._embedder.adopt_stored(stored["model_id"], int(stored["dim"]))
        self._agents.recipe = self.recipe
        if stored["model_id"] == self._embedder.model_id:
            return False
        if family_of(stored["model_id"]) == family_of(self._embedder.model_id):
            b = self.storage.batch()  # new vectors are today's; maintenance re-embeds the rest
            b.put(CF_META, META_EMBEDDING, codec.dumps({"model_id": self._embedder.model_id, "dim": stored["dim"]}))
            self.storage.write(b)
            log.info(
                "vectors of %s will be re-embedded with %s in the background",
                stored["model_id"],
                self._embedder.model_id,
            )
            return False
        if not self.config.reembed_on_model_change:
            raise FailedPrecondition(
                f"the data directory's vectors were made with embedding model {stored['model_id']!r}, but the "
                f"configured model is {self._embedder.model_id!r}. Configure the original model (or "
                "embedding_precision auto), or re-embed every memory with the new one (reembed_on_model_change)."
            )
        self._embedder.forget_dim()
        return True

    def close(self) -> None:
        """Stop background work, flush, release the RocksDB lock. Idempotent.

        Never waits for index work: a graph build under way is abandoned (its vectors stay in
        storage and are sealed again after the next start), the maintenance thread returns
        between agents, and what is written is what the journal already made durable."""
        if self._closed:
            return
        self._closed = True
        self._maintenance.request_stop()
        if self._builder is not None:
            self._builder.close()
        self._maintenance.stop()
        try:
            self._maintenance.final_flush()
        except Exception:
            log.exception("final flush failed; the journal still has every change")
        self._agents.closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._embedder.close()
        self._agents.clear()
        self.storage.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ready(self) -> bool:
        """True once recall can be served (embedding model loaded)."""
        return self._embedder.loaded

    def warm_up(self) -> None:
        """Load the embedding model and anything else the first recall needs."""
        self._embedder.get().embed_query("warm up")

    def preload_agents(self, limit: int | None = None) -> list[str]:
        """Load the most recently active agents (`preload_agents` of them), for a background
        thread at start-up: their first recall after a restart then finds them in memory.
        Returns the ids loaded."""
        n = self.config.preload_agents if limit is None else limit
        if n <= 0:
            return []
        recent = []
        for _, v in self.storage.scan(CF_META, AGENT_RECORDS):
            d = json.loads(v)
            recent.append((float(d.get("last_activity_at", 0.0)), str(d["agent_id"])))
        recent.sort(reverse=True)
        done = []
        for _, agent_id in recent[:n]:
            if self._closed:
                break
            try:
                self._agents.get(agent_id)
            except Exception:  # the agent's own requests will report it
                log.warning("preloading an agent failed", exc_info=True)
                continue
            done.append(agent_id)
        return done

    def index_sizes(self, agent_id: str) -> tuple[int, int]:
        """(vectors, keyword documents) live in the agent's indexes: each should equal its
        memory count (tests and diagnostics)."""
        st = self._agents.get(agent_id)
        with st.lock:
            return (len(st.vindex) if st.vindex else 0, len(st.kindex) if st.kindex else 0)

    def wait_for_indexes(self, agent_id: str, timeout: float = 600.0) -> bool:
        """Block until every sealed segment of the agent's vector index is built and loaded
        (benchmarks and tests measuring steady-state recall); False on timeout."""
        st = self._agents.get(agent_id)
        return st.vindex.wait_ready(timeout) if st.vindex is not None else True

    def loaded_agent_ids(self) -> list[str]:
        """The agents held in memory now (loaded by use or preloading)."""
        return sorted(st.agent_id for st in self._agents.loaded())

    @property
    def keyspace(self) -> Keyspace:
        """How identifiers become storage keys in this data directory (keyspace.py)."""
        return self._agents.keyspace

    def _get_builder(self) -> IndexBuilder:
        if self._builder is None:
            self._builder = IndexBuilder(numba_cache_dir=self.config.numba_cache_dir)
        return self._builder

    # --- memories ----------------------------------------------------------------------------
    def store(self, item: NewMemory) -> tuple[Memory, StoreOutcome]:
        """Store one memory: (memory as stored, what the store did); see store_batch."""
        return self._writes.store_batch([item])[0]

    def store_batch(self, items: list[NewMemory]) -> list[tuple[Memory, StoreOutcome]]:
        """Store memories of one agent, all or nothing (writes.Writes.store_batch: upserts by key,
        retries by id, duplicates merged under each item's policy)."""
        return self._writes.store_batch(items)

    def update(self, agent_id: str, memory_id: str, patch: MemoryPatch) -> Memory:
        return self._writes.update(agent_id, memory_id, patch)

    def delete(self, agent_id: str, memory_id: str) -> Memory:
        return self._writes.delete(agent_id, memory_id)

    def forget(self, agent_id: str, flt: MemoryFilter, dry_run: bool = False) -> ForgetResult:
        return self._writes.forget(agent_id, flt, dry_run)

    def owners(self, memory_id: str) -> list[str]:
        return self._reads.owners(memory_id)

    def get(self, agent_id: str, memory_id: str) -> Memory:
        return self._reads.get(agent_id, memory_id)

    def history(self, agent_id: str, memory_id: str) -> list[Memory]:
        return self._reads.history(agent_id, memory_id)

    def list_memories(
        self,
        agent_id: str,
        flt: MemoryFilter | None = None,
        page_size: int = 50,
        page_token: str = "",
        order_by: str = "created_at desc",
    ) -> ListPage:
        return self._reads.page(agent_id, flt or MemoryFilter(), page_size, page_token, order_by)

    def recall(self, query: RecallQuery) -> RecallResult:
        return self._recall.recall(query)

    def recall_batch(self, queries: list[RecallQuery]) -> list[RecallResult]:
        return self._recall.recall_batch(queries)

    # --- graph -------------------------------------------------------------------------------
    def link(
        self, agent_id: str, source_id: str, target_id: str, relation: str = "related_to", weight: float = 1.0
    ) -> Link:
        return self._graph.link(agent_id, source_id, target_id, relation, weight)

    def unlink(self, agent_id: str, source_id: str, target_id: str, relation: str = "") -> int:
        return self._graph.unlink(agent_id, source_id, target_id, relation)

    def graph(
        self, agent_id: str, memory_id: str, depth: int = 1, relations: list[str] | None = None, max_nodes: int = 100
    ) -> MemoryGraph:
        return self._graph.graph(agent_id, memory_id, depth, relations, max_nodes)

    # --- bulk --------------------------------------------------------------------------------
    def export(self, agent_id: str, flt: MemoryFilter | None = None) -> Iterator[Memory]:
        return self._bulk.export(agent_id, flt or MemoryFilter())

    def import_memories(self, agent_id: str, memories: list[Memory]) -> tuple[int, int]:
        return self._bulk.import_memories(agent_id, memories)

    def consolidate(
        self, agent_id: str, similarity_threshold: float = 0.95, dry_run: bool = True
    ) -> list[DuplicateGroup]:
        return self._bulk.consolidate(agent_id, similarity_threshold, dry_run)

    # --- the change stream -------------------------------------------------------------------
    @property
    def events_enabled(self) -> bool:
        return self._events.enabled

    @property
    def event_position(self) -> int:
        """The position of the last durable change: a watch from "now" starts after it."""
        return self._events.position

    def check_event_cursor(self, after: int) -> None:
        """OutOfRange when changes after `after` are no longer retained."""
        self._events.check_cursor(after)

    @property
    def oldest_event_cursor(self) -> int:
        """The cursor from which every retained change can be read (`start_after = "0"`)."""
        return self._events.pruned_through

    def read_events(
        self, after: int, limit: int, agent_id: str = "", allow: Callable[[str], bool] | None = None
    ) -> EventPage:
        """Changes after `after`, oldest first: of one agent, or of those `allow` accepts."""
        suffix = event_suffix(self._agents.keyspace.agent(agent_id).qa) if agent_id else None
        return self._events.read(after, limit, suffix, allow)

    def add_event_listener(self, listener: Callable[[int], None]) -> None:
        """listener(position) is called (on the commit thread) whenever changes become durable."""
        self.storage.event_listeners.append(listener)

    def remove_event_listener(self, listener: Callable[[int], None]) -> None:
        with contextlib.suppress(ValueError):
            self.storage.event_listeners.remove(listener)

    # --- agents ------------------------------------------------------------------------------
    def list_agents(self, page_size: int = 100, page_token: str = "") -> tuple[list[AgentInfo], str, int]:
        return self._directory.list_agents(page_size, page_token)

    def get_agent(self, agent_id: str) -> AgentInfo:
        return self._directory.get_agent(agent_id)

    def delete_agent(self, agent_id: str) -> int:
        return self._directory.delete_agent(agent_id)

    # --- keys --------------------------------------------------------------------------------
    def put_api_key(self, record: ApiKeyRecord) -> None:
        self._keys.put(record)

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        return self._keys.list()

    # --- embeddings, statistics, maintenance -------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), L2-normalised."""
        return np.asarray(self._embedder.get().embed_documents(list(texts)), dtype=np.float32)

    @property
    def embedding_model(self) -> str:
        return self._embedder.model_id

    @property
    def embedding_dim(self) -> int:
        return self._embedder.dim

    def stats(self) -> EngineStats:
        infos = self._directory.infos()
        exact = indexed = 0
        for st in self._agents.loaded():
            if st.vindex is not None:
                s = st.vindex.stats()
                exact += int(s["vectors_exact"])
                indexed += int(s["vectors_indexed"])
        return EngineStats(
            agents=len(infos),
            memories=sum(a.memory_count for a in infos),
            links=sum(a.link_count for a in infos),
            bytes_on_disk=self.storage.bytes_on_disk(),
            vectors_exact=exact,
            vectors_indexed=indexed,
            index_builds_pending=int(self._builder.pending) if self._builder is not None else 0,
            embedding_model=self._embedder.model_id,
            embedding_dim=self._embedder.known_dim,
            uptime_seconds=time.monotonic() - self._started,
        )

    def checkpoint(self, target_dir: str) -> None:
        """Consistent RocksDB checkpoint (backup) while serving."""
        self._access.flush()
        self.storage.checkpoint(target_dir)

    def run_maintenance(self) -> None:
        """One round of background work now (tests; the background thread runs it on its own)."""
        self._maintenance.run_round()

    def reembed_all(self) -> int:
        return self._maintenance.reembed_all()

"""Server configuration: one typed `Config`, loaded from flags > ENGRAM_* environment > TOML file.

Every option is declared once in `OPTIONS` (name, type, default, environment variable, help); the
command-line parser, the environment reader, the TOML reader and docs/operations/configuration.md
all follow that table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine.config import EngineConfig

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "ENGRAM_"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "engram"


@dataclass(frozen=True)
class Option:
    name: str  # attribute of Config; flag is --name-with-dashes; env is ENGRAM_NAME
    type: str  # "str" | "int" | "float" | "bool" | "path" | "list"
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


@dataclass
class Config:
    """Everything `engram-server serve` can be told. Defaults are the documented ones."""

    host: str = "127.0.0.1"
    port: int = 3300
    grpc_port: int = 50051
    data_dir: Path = field(default_factory=default_data_dir)
    api_key: str = ""
    encryption_key: str = ""
    encryption_key_file: Path | None = None
    embedding_model_path: Path | None = None
    embedding_precision: str = "auto"
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    access_log_agent: str = "id"
    worker_threads: int = 4
    preload_agents: int = 4
    embedding_threads: int = 2
    embedding_arena: bool = False
    reembed_on_model_change: bool = False
    session_context_weight: float = 0.4
    contextual_embedding_weight: float = 0.5
    speaker_embedding_weight: float = 0.5
    access_flush_seconds: float = 10.0
    maintenance_interval: float = 30.0
    duplicate_policy: str = "exact"
    duplicate_threshold: float = 0.95
    event_retention: float = 7 * 86400.0
    max_retained_events: int = 1_000_000
    log_level: str = "info"
    access_log: bool = True
    shutdown_timeout: float = 10.0
    drain_delay: float = 0.0
    max_request_bytes: int = 4 * 1024 * 1024
    max_content_bytes: int = 32_768
    max_metadata_bytes: int = 16_384
    max_metadata_depth: int = 32
    max_tags: int = 64
    max_tag_chars: int = 128
    max_batch_size: int = 256
    max_top_k: int = 100
    max_page_size: int = 1000
    max_graph_depth: int = 5
    max_concurrent_streams: int = 128
    http1_idle_timeout: float = 75.0
    http2_idle_timeout: float = 600.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_stream_resets: int = 500
    # Cluster mode (docs/design/cluster.md): on when etcd endpoints and NATS servers are set.
    cluster_etcd: list[str] = field(default_factory=list)
    cluster_nats: list[str] = field(default_factory=list)
    cluster_node_id: str = ""
    cluster_advertise_url: str = ""
    cluster_shards: int = 64
    cluster_replication: int = 2
    cluster_lease_ttl: float = 5.0
    cluster_log_replicas: int = 3
    cluster_nats_user: str = ""
    cluster_nats_password: str = ""
    cluster_etcd_user: str = ""
    cluster_etcd_password: str = ""
    cluster_tls_ca: Path | None = None
    cluster_tls_cert: Path | None = None
    cluster_tls_key: Path | None = None

    # --- derived --------------------------------------------------------------------------
    @property
    def auth_required(self) -> bool:
        return bool(self.api_key)

    @property
    def cluster_enabled(self) -> bool:
        return bool(self.cluster_etcd or self.cluster_nats)

    def host_is_loopback(self) -> bool:
        return is_loopback(self.host)

    def validate(self) -> None:
        """Raise ValueError with a message fit for an operator."""
        for name in ("port", "grpc_port"):
            v = getattr(self, name)
            if not 0 <= v <= 65535:
                raise ValueError(f"--{name.replace('_', '-')} must be 0..65535, got {v}")
        if self.port == 0:
            raise ValueError("--port must not be 0")
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError("--grpc-port must differ from --port (use 0 to disable it)")
        if not self.api_key and not self.host_is_loopback():
            raise ValueError(
                f"refusing to bind {self.host} without an API key: set ENGRAM_API_KEY (or --api-key) "
                "or bind a loopback address such as 127.0.0.1"
            )
        if self.api_key and len(self.api_key) < 16:
            raise ValueError("the API key must be at least 16 characters")
        if self.encryption_key:
            self.encryption_key_bytes()  # raises on a malformed key
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError(f"--log-level must be debug, info, warning, error or critical, got {self.log_level}")
        for f in fields(self):
            if f.name.startswith("max_") and getattr(self, f.name) <= 0:
                raise ValueError(f"--{f.name.replace('_', '-')} must be positive")
        if self.worker_threads <= 0 or self.embedding_threads <= 0:
            raise ValueError("thread counts must be positive")
        if self.access_log_agent not in ("id", "hash", "none"):
            raise ValueError(f"--access-log-agent must be id, hash or none, got {self.access_log_agent}")
        if self.embedding_precision not in ("auto", "int8", "float32"):
            raise ValueError(f"--embedding-precision must be auto, int8 or float32, got {self.embedding_precision}")
        if not 0.0 <= self.session_context_weight <= 1.0:
            raise ValueError(f"--session-context-weight must be between 0 and 1, got {self.session_context_weight}")
        if not 0.0 <= self.speaker_embedding_weight <= 1.0:
            raise ValueError(f"--speaker-embedding-weight must be between 0 and 1, got {self.speaker_embedding_weight}")
        if not 0.0 <= self.contextual_embedding_weight < 1.0:
            raise ValueError(
                f"--contextual-embedding-weight must be at least 0 and below 1, got {self.contextual_embedding_weight}"
            )
        if not 0 <= self.drain_delay <= 3600 or not 0 < self.shutdown_timeout <= 3600:
            raise ValueError("--drain-delay must be 0..3600 and --shutdown-timeout above 0 and at most 3600 seconds")
        if self.duplicate_policy not in ("off", "exact", "near"):
            raise ValueError(f"--duplicate-policy must be off, exact or near, got {self.duplicate_policy}")
        if not 0.5 <= self.duplicate_threshold <= 1.0:
            raise ValueError(f"--duplicate-threshold must be between 0.5 and 1, got {self.duplicate_threshold}")
        if not 0 <= self.event_retention <= 10 * 365 * 86400:
            raise ValueError(f"--event-retention must be 0 (off) to 315360000 seconds, got {self.event_retention}")
        if not 0.05 <= self.maintenance_interval <= 86400:
            raise ValueError(f"--maintenance-interval must be between 0.05 and 86400, got {self.maintenance_interval}")
        if not 0.05 <= self.access_flush_seconds <= 3600:
            raise ValueError(f"--access-flush-seconds must be between 0.05 and 3600, got {self.access_flush_seconds}")
        if self.cluster_enabled:
            self._validate_cluster()
        for name in ("http1_idle_timeout", "http2_idle_timeout", "header_timeout", "body_timeout"):
            v = getattr(self, name)
            if not 0.1 <= v <= 86400:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0.1 and 86400 seconds, got {v}")

    def _validate_cluster(self) -> None:
        if not self.cluster_etcd or not self.cluster_nats:
            raise ValueError(
                "cluster mode needs both --cluster-etcd (etcd endpoints) and --cluster-nats (NATS servers)"
            )
        if not self.cluster_node_id or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.cluster_node_id):
            raise ValueError(
                "cluster mode needs --cluster-node-id: 1 to 64 characters of [A-Za-z0-9_-], unique per node"
            )
        if not self.encryption_key and self.encryption_key_file is None:
            raise ValueError(
                "cluster mode needs the cluster's shared encryption key (--encryption-key or "
                "--encryption-key-file): every node reads the log that the others encrypt"
            )
        if self.duplicate_policy == "near":
            raise ValueError(
                "--duplicate-policy near is not available in cluster mode (owners must decide every write alike); "
                "use exact, or ConsolidateMemories to merge near duplicates"
            )
        if not 1 <= self.cluster_shards <= 1024:
            raise ValueError(f"--cluster-shards must be 1..1024, got {self.cluster_shards}")
        if not 1 <= self.cluster_replication <= 5:
            raise ValueError(f"--cluster-replication must be 1..5, got {self.cluster_replication}")
        if not 1 <= self.cluster_log_replicas <= 3:
            raise ValueError(f"--cluster-log-replicas must be 1..3, got {self.cluster_log_replicas}")
        if not 1.0 <= self.cluster_lease_ttl <= 60.0:
            raise ValueError(f"--cluster-lease-ttl must be 1..60 seconds, got {self.cluster_lease_ttl}")
        if bool(self.cluster_etcd_user) != bool(self.cluster_etcd_password):
            raise ValueError("--cluster-etcd-user and --cluster-etcd-password go together")
        if bool(self.cluster_tls_cert) != bool(self.cluster_tls_key):
            raise ValueError("--cluster-tls-cert and --cluster-tls-key go together")
        for url in self.cluster_etcd:
            if not re.fullmatch(r"(https?://)?[A-Za-z0-9._-]+:\d{1,5}", url):
                raise ValueError(f"--cluster-etcd: {url!r} is not host:port (or http(s)://host:port)")
        for url in self.cluster_nats:
            if not re.fullmatch(r"(nats|tls)://[A-Za-z0-9._-]+:\d{1,5}", url):
                raise ValueError(f"--cluster-nats: {url!r} is not nats://host:port (or tls://host:port)")

    @property
    def cluster_url(self) -> str:
        """The URL other nodes and `cluster status` give for this node."""
        return self.cluster_advertise_url or f"http://{self.host}:{self.port}"

    def encryption_key_bytes(self) -> bytes | None:
        if not self.encryption_key:
            return None
        return parse_key(self.encryption_key)

    def engine_config(self) -> EngineConfig:  # the import itself stays lazy
        from .engine.config import EngineConfig

        return EngineConfig(
            data_dir=Path(self.data_dir),
            encryption_key=self.encryption_key_bytes(),
            encryption_key_file=self.encryption_key_file,
            embedding_model_path=self.embedding_model_path,
            embedding_precision=self.embedding_precision,
            embedding_threads=self.embedding_threads,
            embedding_arena=self.embedding_arena,
            reembed_on_model_change=self.reembed_on_model_change,
            worker_threads=self.worker_threads,
            preload_agents=self.preload_agents,
            session_context_weight=self.session_context_weight,
            contextual_embedding_weight=self.contextual_embedding_weight,
            speaker_embedding_weight=self.speaker_embedding_weight,
            access_flush_seconds=self.access_flush_seconds,
            background_interval_seconds=self.maintenance_interval,
            event_retention_seconds=self.event_retention,
            max_retained_events=self.max_retained_events,
        )

    def redacted(self) -> dict[str, Any]:
        """The configuration for logging: secrets replaced by whether they are set."""
        out: dict[str, Any] = {}
        for opt in OPTIONS:
            v = getattr(self, opt.name)
            if opt.secret:
                out[opt.name] = "(set)" if v else "(unset)"
            elif isinstance(v, Path):
                out[opt.name] = str(v)
            else:
                out[opt.name] = v
        return out


def parse_key(text: str) -> bytes:
    """A 256-bit key as 64 hex characters (or standard base64 of 32 bytes)."""
    s = text.strip()
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        import base64
        import binascii

        try:
            raw = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the encryption key must be 64 hex characters (32 bytes)") from None
    if len(raw) != 32:
        raise ValueError("the encryption key must be 64 hex characters (32 bytes)")
    return raw


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


OPTIONS: list[Option] = [
    Option("host", "str", "Address to bind. Without an API key only loopback addresses are allowed."),
    Option("port", "int", "Port serving REST, gRPC (h2c), gRPC-Web and metrics."),
    Option(
        "grpc_port", "int", "Second port that serves the same API (for gRPC clients expecting 50051); 0 disables it."
    ),
    Option("data_dir", "path", "Data directory (RocksDB). Default: $XDG_DATA_HOME/engram or ~/.local/share/engram."),
    Option("api_key", "str", "Root API key (admin for every agent). Unset: no auth, loopback only.", secret=True),
    Option("encryption_key", "str", "Encryption key for data at rest: 64 hex characters.", secret=True),
    Option("encryption_key_file", "path", "File holding the encryption key (created on first start when missing)."),
    Option("embedding_model_path", "path", "Local ONNX embedding model directory. Default: bundled all-MiniLM-L6-v2."),
    Option(
        "embedding_precision",
        "str",
        "Bundled model precision: int8 (faster), float32, or auto (what the data directory's vectors "
        "were made with; int8 for a new one). Changing it on existing data is a re-embedding.",
    ),
    Option(
        "cors_origins",
        "list",
        "Comma-separated origins allowed by CORS for browsers (gRPC-Web, Connect, REST); '*' for any.",
    ),
    Option(
        "allowed_hosts",
        "list",
        "Comma-separated Host header values the server answers ('name' or 'name:port'; '*' for any). Unset: "
        "without an API key only loopback names (localhost, 127.0.0.1, [::1]), so that a web page cannot reach "
        "the server through DNS rebinding; with an API key any.",
    ),
    Option("worker_threads", "int", "Engine worker threads (embedding, search, storage)."),
    Option(
        "preload_agents",
        "int",
        "Agents loaded in the background at start-up, most recently active first, so that their "
        "first recall after a restart does not wait for the load; 0 turns it off.",
    ),
    Option(
        "embedding_threads",
        "int",
        "Embedding runs one batch may have going at once (each single-threaded; a query is one run).",
    ),
    Option("embedding_arena", "bool", "Keep onnxruntime's memory arena (holds peak activations; off saves RSS)."),
    Option(
        "reembed_on_model_change",
        "bool",
        "Re-embed every memory at start-up when the data directory's vectors come from another "
        "embedding model (otherwise start-up refuses). Another precision of the same model is "
        "re-embedded in the background without it.",
    ),
    Option(
        "session_context_weight",
        "float",
        "Share of a recall hit's relevance lent to the memories before and after it in the same "
        "session (0 turns it off; docs/design/recall.md).",
    ),
    Option(
        "contextual_embedding_weight",
        "float",
        "Weight of a memory's session predecessor in its vector: a memory with a session is embedded "
        "as its own text's vector plus this share of the previous memory's (0 turns it off; applies "
        "to vectors written from then on; docs/design/recall.md).",
    ),
    Option(
        "speaker_embedding_weight",
        "float",
        "Weight of the speaker's name in the vector of a memory whose content starts with a speaker "
        "label (\"Nate: ...\"): its vector is its text's plus this share of the name's (0 turns it off; "
        "applies to vectors written from then on; docs/design/recall.md).",
    ),
    Option(
        "access_flush_seconds",
        "float",
        "Most seconds between writes of access counts and last-access times into the records (and "
        "at shutdown); recall returns them live meanwhile. A crash loses at most this much of them.",
    ),
    Option(
        "maintenance_interval",
        "float",
        "Seconds between background maintenance rounds: expired memories are removed (and their EXPIRED "
        "changes logged), indexes sealed, catalogues snapshotted, old changes dropped.",
    ),
    Option(
        "duplicate_policy",
        "str",
        "What a store that names no duplicate policy does with a duplicate of a live memory of its agent: "
        "off (store it), exact (merge the same text, ignoring case, whitespace and trailing punctuation) or "
        "near (also merge a text whose embedding is within --duplicate-threshold).",
    ),
    Option(
        "duplicate_threshold",
        "float",
        "Cosine similarity (0.5 to 1) from which the near policy, and ConsolidateMemories, take two "
        "memories for duplicates when the request names none.",
    ),
    Option(
        "event_retention",
        "float",
        "Seconds the change stream (WatchMemories) keeps changes for watchers to resume from; 0 turns the "
        "change stream off (nothing is logged).",
    ),
    Option("max_retained_events", "int", "Most changes the change stream keeps (the oldest are dropped first)."),
    Option("log_level", "str", "Log level: debug, info, warning, error."),
    Option("access_log", "bool", "Log one JSON line per request."),
    Option(
        "access_log_agent",
        "str",
        "How the access log names the agent of a request: id (as sent), hash (a keyed hash, stable for this "
        "data directory and meaningless without its key) or none.",
    ),
    Option(
        "drain_delay",
        "float",
        'Seconds the server keeps serving after SIGTERM/SIGINT while /health answers 503 "stopping", so that '
        "a load balancer stops sending before it stops accepting (set it to the balancer's health-check "
        "interval times its unhealthy threshold).",
    ),
    Option("shutdown_timeout", "float", "Seconds to drain in-flight calls on SIGTERM/SIGINT before closing."),
    Option("max_request_bytes", "int", "Largest REST body or gRPC message, bytes (413 / RESOURCE_EXHAUSTED)."),
    Option("max_content_bytes", "int", "Largest memory content, UTF-8 bytes."),
    Option("max_metadata_bytes", "int", "Largest metadata, bytes of its protobuf encoding (about its JSON size)."),
    Option("max_metadata_depth", "int", "Deepest nesting of metadata objects and lists."),
    Option("max_tags", "int", "Most tags on one memory."),
    Option("max_tag_chars", "int", "Longest tag, characters."),
    Option("max_batch_size", "int", "Most items in a batch store, batch recall or embed call."),
    Option("max_top_k", "int", "Largest recall top_k."),
    Option("max_page_size", "int", "Largest list page_size."),
    Option("max_graph_depth", "int", "Deepest graph traversal."),
    Option("max_concurrent_streams", "int", "Most concurrent calls (HTTP/2 streams) per connection."),
    Option(
        "http1_idle_timeout",
        "float",
        "Seconds an HTTP/1.1 connection may stay open with no request in progress before the server closes it.",
    ),
    Option(
        "http2_idle_timeout",
        "float",
        "Seconds an HTTP/2 connection (a gRPC channel) may stay open with no call in progress before "
        "the server sends GOAWAY and closes it; gRPC clients reconnect on their next call.",
    ),
    Option(
        "header_timeout",
        "float",
        "Seconds a client has to send a request head: the first one (or HTTP/2's preface and "
        "SETTINGS) from connect, each later HTTP/1.1 one from its first byte. Slower: closed.",
    ),
    Option(
        "body_timeout",
        "float",
        "Seconds without a byte of a request body still being received before the server closes "
        "the HTTP/1.1 connection or resets the HTTP/2 stream (a response being written is never cut).",
    ),
    Option(
        "max_stream_resets",
        "int",
        "Most streams a client may reset (RST_STREAM) on one HTTP/2 connection within 10 s; more "
        "gets GOAWAY (ENHANCE_YOUR_CALM) and the connection is closed.",
    ),
    Option("cluster_etcd", "list", "Cluster mode: etcd endpoints, host:port (comma-separated). Unset: single node."),
    Option("cluster_nats", "list", "Cluster mode: NATS servers with JetStream, nats://host:port (comma-separated)."),
    Option("cluster_node_id", "str", "Cluster mode: this node's id, unique in the cluster and kept across restarts."),
    Option("cluster_advertise_url", "str", "Cluster mode: the URL other nodes and clients reach this node at."),
    Option("cluster_shards", "int", "Cluster mode: shard count, fixed when the cluster is created (1..1024)."),
    Option("cluster_replication", "int", "Cluster mode: Engram nodes serving each shard (1..5)."),
    Option("cluster_lease_ttl", "float", "Cluster mode: seconds a silent node keeps its shards (etcd lease)."),
    Option("cluster_log_replicas", "int", "Cluster mode: NATS servers holding each shard's log, 1..3."),
    Option("cluster_nats_user", "str", "Cluster mode: NATS user name."),
    Option("cluster_nats_password", "str", "Cluster mode: NATS password.", secret=True),
    Option("cluster_etcd_user", "str", "Cluster mode: etcd user name."),
    Option("cluster_etcd_password", "str", "Cluster mode: etcd password.", secret=True),
    Option("cluster_tls_ca", "path", "Cluster mode: CA certificate file for TLS to etcd and NATS."),
    Option("cluster_tls_cert", "path", "Cluster mode: client certificate file for TLS to etcd and NATS."),
    Option("cluster_tls_key", "path", "Cluster mode: client key file for TLS to etcd and NATS."),
]
OPTION_BY_NAME = {o.name: o for o in OPTIONS}


def coerce(opt: Option, value: Any, source: str) -> Any:
    """Convert a raw value (string from env/flags, or TOML value) to the option's type."""
    try:
        if opt.type == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if opt.type == "float":
            return float(value)
        if opt.type == "bool":
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if opt.type == "path":
            return Path(os.path.expanduser(str(value))) if str(value) else None
        if opt.type == "list":
            if isinstance(value, list):
                return [str(v).strip() for v in value if str(v).strip()]
            return [p.strip() for p in str(value).split(",") if p.strip()]
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {value!r} is not a valid {opt.type} for {opt.name}") from None


def load(
    cli_values: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Config:
    """Build a Config: defaults < TOML file < environment < flags (None values are "not given")."""
    env = dict(os.environ if env is None else env)
    cli_values = {k: v for k, v in (cli_values or {}).items() if v is not None}
    values: dict[str, Any] = {}

    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        p = Path(path).expanduser()
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ValueError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {p}: {exc}") from None
        if isinstance(data.get("server"), dict):  # allow a [server] table or top-level keys
            data = {**{k: v for k, v in data.items() if k != "server"}, **data["server"]}
        for key, raw in data.items():
            name = key.replace("-", "_")
            opt = OPTION_BY_NAME.get(name)
            if opt is None:
                raise ValueError(f"config file {p}: unknown option {key!r}")
            values[name] = coerce(opt, raw, f"config file {p}")

    for opt in OPTIONS:
        if opt.env in env and env[opt.env] != "":
            values[opt.name] = coerce(opt, env[opt.env], opt.env)
    for name, raw in cli_values.items():
        opt = OPTION_BY_NAME[name]
        values[name] = coerce(opt, raw, opt.flag) if isinstance(raw, str) else raw

    cfg = Config(**{k: v for k, v in values.items() if v is not None})
    if cfg.data_dir is None:
        cfg.data_dir = default_data_dir()
    return cfg

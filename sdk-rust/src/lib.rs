//! # engram-memory-client
//!
//! The async Rust client of [Engram](https://github.com/engram-memory-server/engram), the
//! self-hosted long-term memory server for AI agents. It speaks gRPC (tonic, over h2c) to the
//! server and wraps every RPC of the v1 API in one method of [`Client`].
//!
//! ```no_run
//! use engram_client::{Client, RecallRequest, StoreMemoryRequest};
//!
//! #[tokio::main]
//! async fn main() -> engram_client::Result<()> {
//!     let client = Client::builder()
//!         .endpoint("http://127.0.0.1:3300")
//!         .api_key("my-key")
//!         .build()?;
//!
//!     client
//!         .store(StoreMemoryRequest::new("agent-1", "The user's name is Ada").with_importance(0.9))
//!         .await?;
//!
//!     let found = client
//!         .recall(RecallRequest::new("agent-1", "what is the user called?").with_top_k(3))
//!         .await?;
//!     for memory in found.memories {
//!         println!("{:.3} {}", memory.score, memory.content);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! * Configuration: [`ClientBuilder`] (endpoint, API key, timeouts, [`RetryPolicy`]).
//! * Requests: the protobuf request messages, with builder methods such as
//!   [`StoreMemoryRequest::new`], [`RecallRequest::with_top_k`] and [`MemoryFilter`]'s setters.
//! * Errors: one [`Error`] enum that keeps the gRPC [`Code`] (`err.code_name() == "NOT_FOUND"`).
//! * Streams: [`MemoryStream`], [`AgentStream`] (pages fetched on demand) and [`ExportStream`];
//!   read them with [`StreamExt`].
//! * Wire types: every generated message is re-exported here; the raw generated code (with the
//!   tonic stubs) lives in [`pb`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;
#[allow(
    rustdoc::invalid_html_tags,
    reason = "generated from the vendored google/rpc proto comments, which contain <placeholders>"
)]
pub mod pb;
mod requests;
mod stream;

pub use client::{
    Client, ClientBuilder, CreatedApiKey, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ENDPOINT,
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_RETRIES, DEFAULT_TIMEOUT, Embeddings,
    RetryPolicy, Stored, decode_vector,
};
pub use error::{Code, Error};
pub use pb::engram::v1::{
    Agent, ApiKey, ApiKeyRole, BatchRecallRequest, BatchRecallResponse, BatchStoreMemoriesRequest,
    BatchStoreMemoriesResponse, ClusterNode, CreateApiKeyRequest, CreateApiKeyResponse,
    DeleteAgentRequest, DeleteAgentResponse, DeleteMemoryRequest, DeleteMemoryResponse,
    EmbedRequest, EmbedResponse, Embedding, EmbeddingInputType, ExportMemoriesRequest,
    ExportMemoriesResponse, ForgetMemoriesRequest, ForgetMemoriesResponse, GetAgentRequest,
    GetAgentResponse, GetClusterStatusRequest, GetClusterStatusResponse, GetMemoryGraphRequest,
    GetMemoryGraphResponse, GetMemoryHistoryRequest, GetMemoryHistoryResponse, GetMemoryRequest,
    GetMemoryResponse, GetServerInfoRequest, GetServerInfoResponse, GetStatsRequest,
    GetStatsResponse, HealthRequest, HealthResponse, ImportMemoriesRequest, ImportMemoriesResponse,
    LinkMemoriesRequest, LinkMemoriesResponse, ListAgentsRequest, ListAgentsResponse,
    ListApiKeysRequest, ListApiKeysResponse, ListMemoriesRequest, ListMemoriesResponse, Memory,
    MemoryFilter, MemoryLink, MemoryType, RecallMode, RecallRequest, RecallResponse,
    RecalledMemory, RevokeApiKeyRequest, RevokeApiKeyResponse, ScoreExplanation, ServerLimits,
    StoreMemoryRequest, StoreMemoryResponse, TimeRange, UnlinkMemoriesRequest,
    UnlinkMemoriesResponse, UpdateMemoryRequest, UpdateMemoryResponse,
};
/// `google.protobuf` well-known types used in the messages (`Struct`, `Value`, `Timestamp`...).
pub use prost_types;
pub use requests::json_object;
pub use stream::{AgentStream, ExportStream, MemoryStream};
/// The async stream trait and its combinators (`next`, `map`, `collect`...), re-exported from
/// `tokio-stream`, to read [`MemoryStream`], [`AgentStream`] and [`ExportStream`].
pub use tokio_stream::{Stream, StreamExt};

/// The result of every fallible call of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

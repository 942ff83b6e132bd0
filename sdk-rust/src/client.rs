//! The client, its builder and its retry policy.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Code, Error};
use crate::pb::engram::v1::admin_service_client::AdminServiceClient;
use crate::pb::engram::v1::agent_service_client::AgentServiceClient;
use crate::pb::engram::v1::embedding_service_client::EmbeddingServiceClient;
use crate::pb::engram::v1::memory_service_client::MemoryServiceClient;
use crate::pb::engram::v1::*;
use crate::stream::{ExportStream, Pager};
use crate::watch::{Open, Watcher};
use crate::{AgentStream, MemoryStream, Result, WatchStream};

/// The default server address: a local server on its default port.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:3300";
/// The port of an address that names none.
pub const DEFAULT_PORT: u16 = 3300;
/// The default deadline of each unary call, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time allowed to open the connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of retries of a retryable call after an `UNAVAILABLE` answer.
pub const DEFAULT_RETRIES: u32 = 2;
/// The default delay before the first retry; it doubles for each further retry.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The default longest delay between two retries.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The largest response message the client accepts (a batch recall can be big).
const MAX_DECODING_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How a [`Client`] retries calls that are safe to repeat.
///
/// Only `UNAVAILABLE` answers are retried (the server was not reachable or was draining), and
/// never a call that could apply twice: reads, `embed`, deletes, `unlink`, `revoke_api_key`, a
/// dry-run `forget` or `consolidate`, and `store` / `batch_store` when every memory has a
/// client-chosen id (the server deduplicates them) are retried; `update`, `link`,
/// `create_api_key`, a real `forget` or `consolidate`, `import` and `store` without an id are
/// not. A [`WatchStream`] reconnects with the same backoff, without a retry limit unless
/// [`WatchStream::max_reconnects`] sets one. Retry `n` (from 0) waits a random time in
/// `[0, min(max_backoff, initial_backoff * 2^n))` ("full jitter"), at least the delay of a
/// `google.rpc.RetryInfo` the server sent, and never past the call's deadline. The defaults
/// ([`DEFAULT_RETRIES`], [`DEFAULT_INITIAL_BACKOFF`], [`DEFAULT_MAX_BACKOFF`]) are the same in
/// every Engram SDK.
///
/// ```
/// use std::time::{Duration, Instant};
/// use engram_client::RetryPolicy;
///
/// let policy = RetryPolicy::new(5).backoff(Duration::from_millis(50), Duration::from_secs(1));
/// assert_eq!(policy.max_retries(), 5);
/// assert_eq!(RetryPolicy::none().max_retries(), 0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// [`DEFAULT_RETRIES`] retries, backoff from [`DEFAULT_INITIAL_BACKOFF`] to
    /// [`DEFAULT_MAX_BACKOFF`].
    fn default() -> Self {
        Self::new(DEFAULT_RETRIES)
    }
}

impl RetryPolicy {
    /// Up to `max_retries` retries with the default backoff.
    pub fn new(max_retries: u32) -> Self {
        Self {
            max_retries,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }

    /// Never retry.
    pub fn none() -> Self {
        Self::new(0)
    }

    /// Sets the first delay and the cap of the exponential backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// How many times a call is retried at most (so it is tried `max_retries + 1` times).
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The delay before the first retry.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest delay between retries.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The delay before retry number `retry` (0-based), jitter included.
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(retry);
        let frac = (hasher.finish() % 1_000) as u32;
        exp * frac / 1_000
    }
}

/// Configures and builds a [`Client`]; start with [`Client::builder`].
///
/// | setting | default |
/// |---|---|
/// | [`endpoint`](Self::endpoint) | [`DEFAULT_ENDPOINT`] (`http://127.0.0.1:3300`) |
/// | [`api_key`](Self::api_key) | none (for servers without auth) |
/// | [`timeout`](Self::timeout) | [`DEFAULT_TIMEOUT`] (30 s) per unary call, retries included |
/// | [`connect_timeout`](Self::connect_timeout) | [`DEFAULT_CONNECT_TIMEOUT`] (10 s) |
/// | [`retries`](Self::retries) | [`DEFAULT_RETRIES`] (2), see [`RetryPolicy`] |
///
/// ```no_run
/// # async fn run() -> engram_client::Result<()> {
/// use std::time::{Duration, Instant};
/// use engram_client::Client;
///
/// let client = Client::builder()
///     .endpoint("http://127.0.0.1:3300")
///     .api_key("my-key")
///     .timeout(Duration::from_secs(5))
///     .connect_timeout(Duration::from_secs(2))
///     .retries(5)
///     .connect() // or .build()? to connect lazily, on the first call
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    endpoint: String,
    api_key: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            api_key: None,
            timeout: Some(DEFAULT_TIMEOUT),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientBuilder {
    /// The server's address (gRPC over h2c; default [`DEFAULT_ENDPOINT`],
    /// `http://127.0.0.1:3300`, also for an empty string): `host:port`, `http://host:port` or
    /// `grpc://host:port`, with or without a trailing slash; IPv6 hosts in brackets
    /// (`[::1]:3300`); without a port 3300. No environment variable is read. Checked by
    /// [`build`](Self::build) and [`connect`](Self::connect): another form, or `https://` /
    /// `grpcs://` (no TLS in this build), is [`Error::InvalidConfig`].
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The API key, sent as `authorization: Bearer <key>` with every call.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// The deadline of each unary call, retries and backoff included (default
    /// [`DEFAULT_TIMEOUT`]); each attempt sends what is left of it to the server as the gRPC
    /// deadline. A call that runs out of time fails with `DEADLINE_EXCEEDED`. Streaming calls
    /// (`export`, `import`, `watch`) have no deadline: wrap them in `tokio::time::timeout` if
    /// you need one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Calls without any timeout.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// How long opening the connection may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a retryable call is retried after `UNAVAILABLE` (default
    /// [`DEFAULT_RETRIES`]; 0 disables retries). Keeps the backoff of the current policy.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retry.max_retries = retries;
        self
    }

    /// Replaces the whole retry policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    fn endpoint_and_config(&self) -> Result<(Endpoint, Config)> {
        let address = normalize_endpoint(&self.endpoint)?;
        let endpoint = Endpoint::from_shared(address.clone())
            .map_err(|e| Error::InvalidConfig(format!("endpoint {:?}: {e}", self.endpoint)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("engram-client-rust/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let auth = match &self.api_key {
            None => None,
            Some(key) if key.is_empty() => {
                return Err(Error::InvalidConfig("the API key is empty".into()));
            }
            Some(key) => Some(
                MetadataValue::try_from(format!("Bearer {key}")).map_err(|_| {
                    Error::InvalidConfig(
                        "the API key has characters not allowed in a header".into(),
                    )
                })?,
            ),
        };
        Ok((
            endpoint,
            Config {
                address,
                auth,
                timeout: self.timeout,
                retry: self.retry,
            },
        ))
    }

    /// Builds the client without connecting: the connection opens on the first call (and
    /// reopens after failures). Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn run() -> engram_client::Result<()> {
    /// let client = engram_client::Client::builder().api_key("my-key").build()?;
    /// # Ok(()) }
    /// ```
    pub fn build(self) -> Result<Client> {
        let (endpoint, config) = self.endpoint_and_config()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig(
                "Client::build must be called inside a tokio runtime".into(),
            ));
        }
        Ok(Client {
            channel: endpoint.connect_lazy(),
            config: Arc::new(config),
        })
    }

    /// Builds the client and opens the connection now, failing with [`Error::Transport`]
    /// (`UNAVAILABLE`, naming the address and the cause) when the server cannot be reached.
    ///
    /// ```no_run
    /// # async fn run() -> engram_client::Result<()> {
    /// let client = engram_client::Client::builder().connect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Client> {
        let (endpoint, config) = self.endpoint_and_config()?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::connect_failed(e, &config.address))?;
        Ok(Client {
            channel,
            config: Arc::new(config),
        })
    }
}

/// Normalises a server address to `http://host:port` (see [`ClientBuilder::endpoint`]).
fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let raw = match endpoint.trim() {
        "" => DEFAULT_ENDPOINT,
        trimmed => trimmed,
    };
    let invalid = |why: &str| Error::InvalidConfig(format!("endpoint {raw:?}: {why}"));
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_owned(), raw),
    };
    match scheme.as_str() {
        "http" | "grpc" => {}
        "https" | "grpcs" => {
            return Err(Error::InvalidConfig(
                "TLS (https://) is not supported by this build of engram-memory-client; use \
                 http:// (h2c) or a TLS-terminating proxy"
                    .into(),
            ));
        }
        _ => {
            return Err(invalid(&format!(
                "unsupported scheme {scheme}://; use host:port, http://host:port or grpc://host:port"
            )));
        }
    }
    let hostport = rest.trim_end_matches('/');
    if hostport.contains(['/', '?', '#', '@']) {
        return Err(invalid("expected host:port only (gRPC has no path)"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid("unclosed [ of an IPv6 host"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| invalid("expected :port after the IPv6 host"))?,
            ),
        };
        (format!("[{host}]"), port)
    } else {
        match hostport.split_once(':') {
            None => (hostport.to_owned(), None),
            Some((host, port)) if !port.contains(':') => (host.to_owned(), Some(port)),
            Some(_) => return Err(invalid("put an IPv6 host in brackets, e.g. [::1]:3300")),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(invalid("no host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("invalid port"))?,
    };
    Ok(format!("http://{host}:{port}"))
}

#[derive(Clone)]
struct Config {
    /// The normalised server address, as errors name it.
    address: String,
    auth: Option<MetadataValue<Ascii>>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
}

/// What a successful [`Client::store`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The stored memory, with its id and server-set fields: for a merged duplicate or an upsert
    /// by key, the existing memory (its id) in its new version.
    pub memory: Memory,
    /// True when a new memory was stored (`outcome` is [`StoreOutcome::Created`]).
    pub created: bool,
    /// What the store did: [`Created`](StoreOutcome::Created) a memory,
    /// [`Unchanged`](StoreOutcome::Unchanged) (a retry of a client id with the same content),
    /// [`Merged`](StoreOutcome::Merged) into a duplicate the agent already had (see
    /// [`StoreMemoryRequest::with_duplicate_policy`]), or [`Replaced`](StoreOutcome::Replaced)
    /// the memory with the same key ([`StoreMemoryRequest::with_key`]).
    /// [`Unspecified`](StoreOutcome::Unspecified) only from a server that predates outcomes
    /// (or sends one this client does not know).
    pub outcome: StoreOutcome,
}

/// What a successful [`Client::create_api_key`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedApiKey {
    /// The key's listing (id, role, scope...).
    pub api_key: ApiKey,
    /// The secret, shown only this once: store it now.
    pub key: String,
}

/// What a successful [`Client::embed`] returns: the vectors decoded to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// One vector per input text, in request order, L2-normalised.
    pub vectors: Vec<Vec<f32>>,
    /// The model that made them.
    pub model: String,
    /// Dimensions of each vector.
    pub dimensions: usize,
}

/// Decodes a vector sent as packed little-endian `f32` bytes (as in [`Embedding::vector`]).
///
/// ```
/// let bytes: Vec<u8> = [1.0f32, -0.5].iter().flat_map(|f| f.to_le_bytes()).collect();
/// assert_eq!(engram_client::decode_vector(&bytes).unwrap(), [1.0, -0.5]);
/// assert!(engram_client::decode_vector(&[0, 0, 0]).is_err());
/// ```
pub fn decode_vector(bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::Protocol(format!(
            "an embedding of {} bytes is not a whole number of f32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn required<T>(value: Option<T>, what: &str) -> Result<T> {
    value.ok_or_else(|| Error::Protocol(format!("the server's response has no {what}")))
}

/// An async client of an Engram server: every RPC of the v1 API, one method each.
///
/// A `Client` holds one HTTP/2 connection that multiplexes concurrent calls; it is cheap to
/// clone and clones share the connection, so create one and pass it around.
///
/// ```no_run
/// use engram_client::{Client, RecallRequest, StoreMemoryRequest};
///
/// #[tokio::main]
/// async fn main() -> engram_client::Result<()> {
///     let client = Client::builder()
///         .endpoint("http://127.0.0.1:3300")
///         .api_key("my-key")
///         .build()?;
///     client
///         .store(StoreMemoryRequest::new("agent-1", "The user's name is Ada").with_importance(0.9))
///         .await?;
///     let found = client.recall(RecallRequest::new("agent-1", "what is the user called?")).await?;
///     for m in found.memories {
///         println!("{:.3} {}", m.score, m.content);
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    config: Arc<Config>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("authenticated", &self.config.auth.is_some())
            .field("timeout", &self.config.timeout)
            .field("retry", &self.config.retry)
            .finish_non_exhaustive()
    }
}

macro_rules! rpc {
    ($svc:ident, $method:ident) => {
        |channel, request| async move {
            $svc::new(channel)
                .max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES)
                .$method(request)
                .await
        }
    };
}

impl Client {
    /// Starts configuring a client; see [`ClientBuilder`] for the settings and defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The server address, normalised: `"127.0.0.1:3300"` becomes `http://127.0.0.1:3300`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> engram_client::Result<()> {
    /// let client = engram_client::Client::builder().endpoint("127.0.0.1:3300/").build()?;
    /// assert_eq!(client.endpoint(), "http://127.0.0.1:3300");
    /// # Ok(()) }
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.config.address
    }

    /// A client sharing this one's connection with another per-call timeout.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use std::time::{Duration, Instant};
    /// let patient = client.with_timeout(Duration::from_secs(120));
    /// let stats = patient.stats().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        let mut config = (*self.config).clone();
        config.timeout = Some(timeout);
        Client {
            channel: self.channel.clone(),
            config: Arc::new(config),
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(auth) = &self.config.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        request
    }

    /// The retry policy (also the backoff of a watch's reconnections).
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.config.retry
    }

    /// Sends one `WatchMemories` call (no deadline: the stream is endless).
    pub(crate) fn open_watch(&self, message: WatchMemoriesRequest) -> Open {
        let request = self.request(message);
        let channel = self.channel.clone();
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            MemoryServiceClient::new(channel)
                .max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES)
                .watch_memories(request)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| Error::from_call(status, &config.address))
        })
    }

    /// Runs a unary call under the client's deadline, retrying `UNAVAILABLE` when `retryable`.
    async fn unary<Req, Resp, F, Fut>(&self, retryable: bool, message: Req, call: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.with_retries(retryable, true, message, call).await
    }

    /// Runs a call, retrying `UNAVAILABLE` answers when `retryable` within the client's timeout;
    /// `send_deadline` also sends what is left of it to the server (not for streams, whose
    /// length is unknown).
    async fn with_retries<Req, Resp, F, Fut>(
        &self,
        retryable: bool,
        send_deadline: bool,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let policy = self.config.retry;
        let max_retries = if retryable { policy.max_retries } else { 0 };
        let deadline = self.config.timeout.map(|t| Instant::now() + t);
        let mut message = Some(message);
        let mut retry = 0;
        loop {
            let last = retry >= max_retries;
            let body = if last {
                message
                    .take()
                    .expect("message is kept until the last attempt")
            } else {
                message
                    .clone()
                    .expect("message is kept until the last attempt")
            };
            let mut request = self.request(body);
            if let Some(deadline) = deadline
                && send_deadline
            {
                request.set_timeout(deadline.saturating_duration_since(Instant::now()));
            }
            match call(self.channel.clone(), request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => {
                    let err = Error::from_call(status, &self.config.address);
                    if last || err.code() != Code::Unavailable {
                        return Err(err);
                    }
                    let delay = policy
                        .delay(retry)
                        .max(err.retry_after().unwrap_or_default());
                    if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                        // No time left for another attempt: report why the last one failed.
                        return Err(err);
                    }
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // MemoryService
    // ----------------------------------------------------------------------------------------

    /// Stores one memory (`MemoryService.StoreMemory`). It is embedded, indexed and visible to
    /// the next recall when this returns. [`Stored::outcome`] says what happened:
    ///
    /// * A duplicate of a memory the agent already has is merged into it (`Merged`: the new
    ///   text, the higher importance, the union of tags, a new version) instead of stored again.
    ///   By default (the server's `duplicate_policy`, normally `EXACT`) a duplicate is the same
    ///   text up to case, whitespace and trailing punctuation;
    ///   [`with_duplicate_policy`](StoreMemoryRequest::with_duplicate_policy)`(`[`DuplicatePolicy::Near`]`)`
    ///   also merges close rephrasings (cosine from
    ///   [`with_duplicate_threshold`](StoreMemoryRequest::with_duplicate_threshold), default
    ///   0.95), and [`DuplicatePolicy::Off`] always stores.
    /// * With [`with_key`](StoreMemoryRequest::with_key), the agent's memory with that key is
    ///   replaced (`Replaced`: same id, a new version, the old one in its history): an upsert.
    /// * With a client id ([`with_id`](StoreMemoryRequest::with_id)) the same id and content
    ///   again is `Unchanged` (a safe retry); the same id with other content is
    ///   `ALREADY_EXISTS`. `id` and `key` are exclusive (`INVALID_ARGUMENT`).
    ///
    /// Retried on `UNAVAILABLE` only when the request has a client id.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{DuplicatePolicy, MemoryType, StoreMemoryRequest, StoreOutcome};
    ///
    /// let stored = client
    ///     .store(StoreMemoryRequest::new("agent-1", "Ada prefers tea").with_memory_type(MemoryType::Semantic))
    ///     .await?;
    /// println!("stored {} (v{})", stored.memory.id, stored.memory.version);
    ///
    /// // The same fact again is merged into that memory.
    /// let again = client.store(StoreMemoryRequest::new("agent-1", "ada prefers tea.")).await?;
    /// assert_eq!((again.outcome, again.memory.id), (StoreOutcome::Merged, stored.memory.id));
    ///
    /// // An upsert: one memory per key, replaced by each store.
    /// let theme = StoreMemoryRequest::new("agent-1", "theme: dark").with_key("prefs/theme");
    /// let replaced = client.store(theme).await?; // Created the first time, then Replaced
    ///
    /// // Keep a copy even of an exact duplicate.
    /// let copy = client
    ///     .store(StoreMemoryRequest::new("agent-1", "Ada prefers tea").with_duplicate_policy(DuplicatePolicy::Off))
    ///     .await?;
    /// assert!(copy.created);
    /// # Ok(()) }
    /// ```
    pub async fn store(&self, request: StoreMemoryRequest) -> Result<Stored> {
        let retryable = !request.id.is_empty();
        let response = self
            .unary(retryable, request, rpc!(MemoryServiceClient, store_memory))
            .await?;
        let outcome = response.outcome();
        Ok(Stored {
            memory: required(response.memory, "memory")?,
            created: response.created,
            outcome,
        })
    }

    /// Stores many memories in one call, all or nothing (`MemoryService.BatchStoreMemories`).
    /// Each request is handled as by [`Client::store`] (a duplicate of an earlier item of the
    /// same batch is merged too); `outcomes()` lists what each one did, in request order. A key
    /// used twice in one batch is `INVALID_ARGUMENT`. Retried on `UNAVAILABLE` only when every
    /// request has a client id.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{StoreMemoryRequest, StoreOutcome};
    ///
    /// let batch = client
    ///     .batch_store([
    ///         StoreMemoryRequest::new("agent-1", "first"),
    ///         StoreMemoryRequest::new("agent-1", "second"),
    ///         StoreMemoryRequest::new("agent-1", "First."), // the same fact as the first
    ///     ])
    ///     .await?;
    /// assert_eq!(batch.memories.len(), 3);
    /// let outcomes: Vec<StoreOutcome> = batch.outcomes().collect();
    /// assert_eq!(outcomes, [StoreOutcome::Created, StoreOutcome::Created, StoreOutcome::Merged]);
    /// # Ok(()) }
    /// ```
    pub async fn batch_store(
        &self,
        requests: impl IntoIterator<Item = StoreMemoryRequest>,
    ) -> Result<BatchStoreMemoriesResponse> {
        let request = BatchStoreMemoriesRequest {
            requests: requests.into_iter().collect(),
        };
        let retryable =
            !request.requests.is_empty() && request.requests.iter().all(|r| !r.id.is_empty());
        self.unary(
            retryable,
            request,
            rpc!(MemoryServiceClient, batch_store_memories),
        )
        .await
    }

    /// Gets one memory by id (`MemoryService.GetMemory`); `NOT_FOUND` when it does not exist.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::GetMemoryRequest;
    ///
    /// let memory = client.get("mem-1").await?;
    /// // Or insist that it belongs to an agent:
    /// let memory = client.get(GetMemoryRequest::new("mem-1").with_agent_id("agent-1")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, request: impl Into<GetMemoryRequest>) -> Result<Memory> {
        let response = self
            .unary(true, request.into(), rpc!(MemoryServiceClient, get_memory))
            .await?;
        required(response.memory, "memory")
    }

    /// Updates fields of a memory (`MemoryService.UpdateMemory`) and returns it with its version
    /// incremented; the previous version stays in the history. Never retried.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::UpdateMemoryRequest;
    ///
    /// let updated = client
    ///     .update(UpdateMemoryRequest::new("mem-1").with_content("Ada prefers green tea").with_importance(0.8))
    ///     .await?;
    /// assert_eq!(updated.content, "Ada prefers green tea");
    /// # Ok(()) }
    /// ```
    pub async fn update(&self, request: UpdateMemoryRequest) -> Result<Memory> {
        let response = self
            .unary(false, request, rpc!(MemoryServiceClient, update_memory))
            .await?;
        required(response.memory, "memory")
    }

    /// Deletes a memory with its vector, links and history (`MemoryService.DeleteMemory`).
    /// Retried on `UNAVAILABLE` (a retry after a lost answer reports `NOT_FOUND`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// client.delete("mem-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, request: impl Into<DeleteMemoryRequest>) -> Result<()> {
        self.unary(
            true,
            request.into(),
            rpc!(MemoryServiceClient, delete_memory),
        )
        .await
        .map(|_| ())
    }

    /// Lists one page of an agent's memories with the total count (`MemoryService.ListMemories`).
    /// See [`Client::memories_stream`] to walk every page.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::ListMemoriesRequest;
    ///
    /// let page = client.list(ListMemoriesRequest::new("agent-1").with_page_size(20)).await?;
    /// println!("{} of {}", page.memories.len(), page.total_size);
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, request: ListMemoriesRequest) -> Result<ListMemoriesResponse> {
        self.unary(true, request, rpc!(MemoryServiceClient, list_memories))
            .await
    }

    /// Streams every memory matching a list request, fetching page after page as it is read.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{ListMemoriesRequest, StreamExt};
    ///
    /// let mut memories = client.memories_stream(ListMemoriesRequest::new("agent-1").with_page_size(200));
    /// while let Some(memory) = memories.next().await {
    ///     println!("{}", memory?.content);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn memories_stream(&self, request: ListMemoriesRequest) -> MemoryStream {
        let client = self.clone();
        let first = request.page_token.clone();
        MemoryStream::new(Pager::new(first, move |token| {
            let client = client.clone();
            let mut request = request.clone();
            request.page_token = token;
            Box::pin(async move {
                let page = client.list(request).await?;
                Ok((page.memories, page.next_page_token))
            })
        }))
    }

    /// Finds the memories most relevant to a query (`MemoryService.Recall`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{MemoryFilter, RecallRequest};
    ///
    /// let found = client
    ///     .recall(
    ///         RecallRequest::new("agent-1", "what does Ada drink?")
    ///             .with_top_k(5)
    ///             .with_filter(MemoryFilter::new().with_min_importance(0.3)),
    ///     )
    ///     .await?;
    /// for m in &found.memories {
    ///     println!("{:.3} {}", m.score, m.content);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn recall(&self, request: RecallRequest) -> Result<RecallResponse> {
        self.unary(true, request, rpc!(MemoryServiceClient, recall))
            .await
    }

    /// Runs several recalls in one call (`MemoryService.BatchRecall`); one response per request,
    /// in order.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::RecallRequest;
    ///
    /// let answers = client
    ///     .batch_recall([RecallRequest::new("agent-1", "tea"), RecallRequest::new("agent-1", "coffee")])
    ///     .await?;
    /// assert_eq!(answers.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn batch_recall(
        &self,
        requests: impl IntoIterator<Item = RecallRequest>,
    ) -> Result<Vec<RecallResponse>> {
        let request = BatchRecallRequest {
            requests: requests.into_iter().collect(),
        };
        self.unary(true, request, rpc!(MemoryServiceClient, batch_recall))
            .await
            .map(|r| r.responses)
    }

    /// Deletes every memory of an agent matching a non-empty filter, or with `dry_run` only
    /// counts them (`MemoryService.ForgetMemories`). Never retried.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{ForgetMemoriesRequest, MemoryFilter};
    ///
    /// let filter = MemoryFilter::new().with_session_id("run-42");
    /// let preview = client.forget(ForgetMemoriesRequest::new("agent-1", filter.clone()).with_dry_run(true)).await?;
    /// println!("would delete {}", preview.matched_count);
    /// let done = client.forget(ForgetMemoriesRequest::new("agent-1", filter)).await?;
    /// println!("deleted {}", done.deleted_count);
    /// # Ok(()) }
    /// ```
    pub async fn forget(&self, request: ForgetMemoriesRequest) -> Result<ForgetMemoriesResponse> {
        let retryable = request.dry_run;
        self.unary(
            retryable,
            request,
            rpc!(MemoryServiceClient, forget_memories),
        )
        .await
    }

    /// Lists every version of a memory, oldest first (`MemoryService.GetMemoryHistory`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// for version in client.history("mem-1").await? {
    ///     println!("v{}: {}", version.version, version.content);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        request: impl Into<GetMemoryHistoryRequest>,
    ) -> Result<Vec<Memory>> {
        self.unary(
            true,
            request.into(),
            rpc!(MemoryServiceClient, get_memory_history),
        )
        .await
        .map(|r| r.versions)
    }

    /// Links two memories of an agent in its knowledge graph (`MemoryService.LinkMemories`).
    /// Never retried.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::LinkMemoriesRequest;
    ///
    /// let link = client.link(LinkMemoriesRequest::new("agent-1", "m1", "m2").with_relation("caused_by")).await?;
    /// assert_eq!(link.relation, "caused_by");
    /// # Ok(()) }
    /// ```
    pub async fn link(&self, request: LinkMemoriesRequest) -> Result<MemoryLink> {
        let response = self
            .unary(false, request, rpc!(MemoryServiceClient, link_memories))
            .await?;
        required(response.link, "link")
    }

    /// Removes links between two memories and returns how many were removed
    /// (`MemoryService.UnlinkMemories`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::UnlinkMemoriesRequest;
    ///
    /// let removed = client.unlink(UnlinkMemoriesRequest::new("agent-1", "m1", "m2")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn unlink(&self, request: UnlinkMemoriesRequest) -> Result<i32> {
        self.unary(true, request, rpc!(MemoryServiceClient, unlink_memories))
            .await
            .map(|r| r.removed_count)
    }

    /// Returns the memories reachable from one memory by following links, with the links
    /// (`MemoryService.GetMemoryGraph`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::GetMemoryGraphRequest;
    ///
    /// let graph = client.graph(GetMemoryGraphRequest::new("agent-1", "m1").with_depth(2)).await?;
    /// println!("{} memories, {} links", graph.memories.len(), graph.links.len());
    /// # Ok(()) }
    /// ```
    pub async fn graph(&self, request: GetMemoryGraphRequest) -> Result<GetMemoryGraphResponse> {
        self.unary(true, request, rpc!(MemoryServiceClient, get_memory_graph))
            .await
    }

    /// Streams every memory of an agent, with all fields, for backup or migration
    /// (`MemoryService.ExportMemories`). The stream has no deadline; opening it is retried on
    /// `UNAVAILABLE`, a stream that breaks later is not (export again: it is a read).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::StreamExt;
    ///
    /// let mut export = client.export("agent-1").await?;
    /// let mut backup = Vec::new();
    /// while let Some(memory) = export.next().await {
    ///     backup.push(memory?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn export(&self, request: impl Into<ExportMemoriesRequest>) -> Result<ExportStream> {
        let stream = self
            .with_retries(
                true,
                false,
                request.into(),
                rpc!(MemoryServiceClient, export_memories),
            )
            .await?;
        Ok(ExportStream::new(stream))
    }

    /// Finds near-duplicate memories of an agent and merges each group into one memory
    /// (`MemoryService.ConsolidateMemories`): the most important (then the oldest) is kept and
    /// gets a new version, the others are deleted (their records stay in its history, their
    /// links move to it). [`with_dry_run`](ConsolidateMemoriesRequest::with_dry_run) only lists
    /// the groups (it needs only a read key); the threshold
    /// ([`with_similarity_threshold`](ConsolidateMemoriesRequest::with_similarity_threshold),
    /// cosine from 0.5 to 1) defaults to the server's `duplicate_threshold` (0.95). Takes an
    /// agent id or a [`ConsolidateMemoriesRequest`]. Retried on `UNAVAILABLE` only as a dry run.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::ConsolidateMemoriesRequest;
    ///
    /// let preview = client.consolidate(ConsolidateMemoriesRequest::new("agent-1").with_dry_run(true)).await?;
    /// for group in &preview.groups {
    ///     println!("keep {}, merge {:?} (cosine >= {:.2})", group.keep_id, group.duplicate_ids, group.min_similarity);
    /// }
    /// let done = client.consolidate("agent-1").await?;
    /// println!("merged {} memories", done.merged_count);
    /// # Ok(()) }
    /// ```
    pub async fn consolidate(
        &self,
        request: impl Into<ConsolidateMemoriesRequest>,
    ) -> Result<ConsolidateMemoriesResponse> {
        let request = request.into();
        let retryable = request.dry_run;
        self.unary(
            retryable,
            request,
            rpc!(MemoryServiceClient, consolidate_memories),
        )
        .await
    }

    /// Watches the changes to an agent's memories (`MemoryService.WatchMemories`): a
    /// [`WatchStream`] of [`MemoryEvent`]s (created, updated, deleted, expired), in the order
    /// the server made them, each once. An empty `agent_id` watches every agent the key may
    /// access.
    ///
    /// `start_after` is where to begin: `""` from now on (from when the stream is first polled:
    /// the call opens then), `"0"` every change the server still keeps (its `event_retention`,
    /// 7 days by default), or a cursor from [`WatchStream::cursor`] / [`MemoryEvent::cursor`] to
    /// continue after that event.
    ///
    /// The stream never ends on its own: when the server restarts or the connection breaks it
    /// reconnects from its cursor with backoff, without gaps or repeats
    /// ([`max_reconnects`](WatchStream::max_reconnects) limits that), and hides the heartbeats
    /// the server sends while idle. A cursor older than what the server keeps yields an error
    /// with code [`Code::OutOfRange`](crate::Code::OutOfRange) (resynchronise with
    /// [`Client::export`], then watch from `""`). Stop by dropping the stream (or `break`ing out
    /// of the loop): that cancels the call. The stream has no deadline.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{Code, MemoryEventType, StreamExt};
    ///
    /// let mut cursor = String::from("0"); // e.g. loaded from where the last run stopped
    /// let mut changes = client.watch("agent-1", cursor.clone());
    /// while let Some(event) = changes.next().await {
    ///     match event {
    ///         Ok(event) if event.r#type() == MemoryEventType::Created => {
    ///             println!("new: {}", event.memory.map(|m| m.content).unwrap_or_default());
    ///         }
    ///         Ok(event) => println!("{:?} {}", event.r#type(), event.memory_id),
    ///         Err(err) if err.code() == Code::OutOfRange => {
    ///             // Too far behind: reload with client.export(..), then watch from "" (now).
    ///             break;
    ///         }
    ///         Err(err) => return Err(err),
    ///     }
    ///     cursor = changes.cursor().to_owned(); // save it to resume here later
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(
        &self,
        agent_id: impl Into<String>,
        start_after: impl Into<String>,
    ) -> WatchStream {
        WatchStream::new(Watcher::new(
            self.clone(),
            agent_id.into(),
            start_after.into(),
        ))
    }

    /// Imports memories as exported, keeping ids, times and versions
    /// (`MemoryService.ImportMemories`). Memories whose id exists are skipped, so an interrupted
    /// import can simply run again. Accepts [`Memory`] values (from [`Client::export`]) or
    /// [`ImportMemoriesRequest`]s (to import into another agent). Memory ids are unique per
    /// server. Never retried.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client, backup: Vec<engram_client::Memory>) -> engram_client::Result<()> {
    /// use engram_client::ImportMemoriesRequest;
    ///
    /// let result = client.import(backup.clone()).await?;
    /// println!("imported {}, skipped {}", result.imported_count, result.skipped_count);
    /// // Into another agent: ids are per agent, so the copies keep theirs.
    /// let copies = backup.into_iter().map(|m| ImportMemoriesRequest::new(m).with_agent_id("agent-copy"));
    /// client.import(copies).await?;
    /// # Ok(()) }
    /// ```
    pub async fn import<I>(&self, memories: I) -> Result<ImportMemoriesResponse>
    where
        I: IntoIterator,
        I::Item: Into<ImportMemoriesRequest>,
    {
        let requests: Vec<ImportMemoriesRequest> = memories.into_iter().map(Into::into).collect();
        self.import_stream(tokio_stream::iter(requests)).await
    }

    /// Like [`Client::import`], from a stream produced as the upload goes, for imports too big to
    /// hold in memory.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client, other: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{ImportMemoriesRequest, StreamExt};
    ///
    /// // Copy an agent from one server to another without buffering it (errors end the copy).
    /// let source = other.export("agent-1").await?;
    /// let requests = source.map_while(|m| m.ok()).map(ImportMemoriesRequest::new);
    /// client.import_stream(requests).await?;
    /// # Ok(()) }
    /// ```
    pub async fn import_stream<S>(&self, requests: S) -> Result<ImportMemoriesResponse>
    where
        S: crate::Stream<Item = ImportMemoriesRequest> + Send + 'static,
    {
        let request = self.request(requests);
        let response = MemoryServiceClient::new(self.channel.clone())
            .import_memories(request)
            .await?;
        Ok(response.into_inner())
    }

    // ----------------------------------------------------------------------------------------
    // AgentService
    // ----------------------------------------------------------------------------------------

    /// Lists one page of agents, in agent id order (`AgentService.ListAgents`). See
    /// [`Client::agents_stream`] to walk every page.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let page = client.list_agents(engram_client::ListAgentsRequest::new()).await?;
    /// for agent in page.agents {
    ///     println!("{}: {} memories", agent.agent_id, agent.memory_count);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_agents(&self, request: ListAgentsRequest) -> Result<ListAgentsResponse> {
        self.unary(true, request, rpc!(AgentServiceClient, list_agents))
            .await
    }

    /// Streams every agent, fetching page after page as it is read.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{ListAgentsRequest, StreamExt};
    ///
    /// let ids: Vec<String> = client
    ///     .agents_stream(ListAgentsRequest::new())
    ///     .map(|a| a.map(|a| a.agent_id))
    ///     .collect::<Result<_, _>>()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn agents_stream(&self, request: ListAgentsRequest) -> AgentStream {
        let client = self.clone();
        let first = request.page_token.clone();
        AgentStream::new(Pager::new(first, move |token| {
            let client = client.clone();
            let mut request = request.clone();
            request.page_token = token;
            Box::pin(async move {
                let page = client.list_agents(request).await?;
                Ok((page.agents, page.next_page_token))
            })
        }))
    }

    /// Gets one agent with its counts, sizes and last activity (`AgentService.GetAgent`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let agent = client.get_agent("agent-1").await?;
    /// println!("{} memories, {} bytes", agent.memory_count, agent.bytes_stored);
    /// # Ok(()) }
    /// ```
    pub async fn get_agent(&self, request: impl Into<GetAgentRequest>) -> Result<Agent> {
        let response = self
            .unary(true, request.into(), rpc!(AgentServiceClient, get_agent))
            .await?;
        required(response.agent, "agent")
    }

    /// Erases an agent: every memory, vector, index, link and version (`AgentService.DeleteAgent`).
    /// Returns how many memories were erased. Cannot be undone.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let erased = client.delete_agent("agent-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_agent(&self, request: impl Into<DeleteAgentRequest>) -> Result<i32> {
        self.unary(true, request.into(), rpc!(AgentServiceClient, delete_agent))
            .await
            .map(|r| r.deleted_memory_count)
    }

    // ----------------------------------------------------------------------------------------
    // AdminService
    // ----------------------------------------------------------------------------------------

    /// Reports whether the server can serve (`AdminService.Health`); needs no API key.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let health = client.health().await?;
    /// assert_eq!(health.status, "healthy");
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Result<HealthResponse> {
        self.unary(true, HealthRequest {}, rpc!(AdminServiceClient, health))
            .await
    }

    /// Returns the server's version, embedding model and limits (`AdminService.GetServerInfo`).
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let info = client.server_info().await?;
    /// println!("{} {}d", info.embedding_model, info.embedding_dimensions);
    /// # Ok(()) }
    /// ```
    pub async fn server_info(&self) -> Result<GetServerInfoResponse> {
        self.unary(
            true,
            GetServerInfoRequest {},
            rpc!(AdminServiceClient, get_server_info),
        )
        .await
    }

    /// Returns counts and sizes across the server (`AdminService.GetStats`); needs an admin key.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let stats = client.stats().await?;
    /// println!("{} memories in {} agents", stats.memory_count, stats.agent_count);
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Result<GetStatsResponse> {
        self.unary(
            true,
            GetStatsRequest {},
            rpc!(AdminServiceClient, get_stats),
        )
        .await
    }

    /// Creates a scoped API key (`AdminService.CreateApiKey`); needs an admin key. The secret is
    /// returned only this once. Never retried.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{ApiKeyRole, CreateApiKeyRequest};
    ///
    /// let created = client
    ///     .create_api_key(CreateApiKeyRequest::new("reader", ApiKeyRole::ReadOnly).with_agent_ids(["agent-1"]))
    ///     .await?;
    /// println!("id {} secret {}", created.api_key.id, created.key);
    /// # Ok(()) }
    /// ```
    pub async fn create_api_key(&self, request: CreateApiKeyRequest) -> Result<CreatedApiKey> {
        let response = self
            .unary(false, request, rpc!(AdminServiceClient, create_api_key))
            .await?;
        Ok(CreatedApiKey {
            api_key: required(response.api_key, "api_key")?,
            key: response.key,
        })
    }

    /// Lists API keys, newest first, never their secrets (`AdminService.ListApiKeys`); needs an
    /// admin key. `include_revoked` also lists revoked and expired keys.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// for key in client.list_api_keys(false).await? {
    ///     println!("{} {} {:?}", key.id, key.name, key.role());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_api_keys(&self, include_revoked: bool) -> Result<Vec<ApiKey>> {
        let request = ListApiKeysRequest { include_revoked };
        self.unary(true, request, rpc!(AdminServiceClient, list_api_keys))
            .await
            .map(|r| r.api_keys)
    }

    /// Revokes an API key by id; it stops working at once (`AdminService.RevokeApiKey`). Needs an
    /// admin key.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let revoked = client.revoke_api_key("key-id").await?;
    /// assert!(revoked.revoked_at.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn revoke_api_key(&self, request: impl Into<RevokeApiKeyRequest>) -> Result<ApiKey> {
        let response = self
            .unary(
                true,
                request.into(),
                rpc!(AdminServiceClient, revoke_api_key),
            )
            .await?;
        required(response.api_key, "api_key")
    }

    /// Describes the cluster (`AdminService.GetClusterStatus`); a single server answers one
    /// healthy node and replication factor 1.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let cluster = client.cluster_status().await?;
    /// assert_eq!(cluster.node_count, cluster.healthy_node_count);
    /// # Ok(()) }
    /// ```
    pub async fn cluster_status(&self) -> Result<GetClusterStatusResponse> {
        self.unary(
            true,
            GetClusterStatusRequest {},
            rpc!(AdminServiceClient, get_cluster_status),
        )
        .await
    }

    /// Drains a cluster node, named as [`cluster_status`](Self::cluster_status) names it
    /// (`AdminService.DrainClusterNode`): each shard it owns moves to another node, whose new
    /// owner serves before this one stops, after which the node owns nothing and can be stopped
    /// without a failed call. Returns the node as the drain starts. Needs an admin key; a single
    /// server answers `FAILED_PRECONDITION`.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// let drained = client.drain_cluster_node("node-2").await?;
    /// println!("still owns {:?}", drained.node.map(|n| n.serving_shards));
    /// # Ok(()) }
    /// ```
    pub async fn drain_cluster_node(
        &self,
        request: impl Into<DrainClusterNodeRequest>,
    ) -> Result<DrainClusterNodeResponse> {
        self.unary(
            true,
            request.into(),
            rpc!(AdminServiceClient, drain_cluster_node),
        )
        .await
    }

    // ----------------------------------------------------------------------------------------
    // EmbeddingService
    // ----------------------------------------------------------------------------------------

    /// Embeds texts with the server's model (`EmbeddingService.Embed`) and decodes the packed
    /// little-endian `f32` vectors.
    ///
    /// ```no_run
    /// # async fn run(client: engram_client::Client) -> engram_client::Result<()> {
    /// use engram_client::{EmbedRequest, EmbeddingInputType};
    ///
    /// let out = client.embed(EmbedRequest::new(["hello world"]).with_input_type(EmbeddingInputType::Query)).await?;
    /// assert_eq!(out.vectors[0].len(), out.dimensions);
    /// # Ok(()) }
    /// ```
    pub async fn embed(&self, request: EmbedRequest) -> Result<Embeddings> {
        let expected = request.texts.len();
        let response = self
            .unary(true, request, rpc!(EmbeddingServiceClient, embed))
            .await?;
        let dimensions = usize::try_from(response.dimensions)
            .map_err(|_| Error::Protocol(format!("negative dimensions {}", response.dimensions)))?;
        let vectors = response
            .embeddings
            .iter()
            .map(|e| decode_vector(&e.vector))
            .collect::<Result<Vec<_>>>()?;
        if vectors.len() != expected || vectors.iter().any(|v| v.len() != dimensions) {
            return Err(Error::Protocol(format!(
                "expected {expected} vectors of {dimensions} values, got {:?}",
                vectors.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        Ok(Embeddings {
            vectors,
            model: response.model,
            dimensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::new(10).backoff(Duration::from_millis(100), Duration::from_secs(1));
        for retry in 0..40 {
            let d = p.delay(retry);
            let cap =
                Duration::from_millis(100 * (1u64 << retry.min(20))).min(Duration::from_secs(1));
            assert!(d < cap, "retry {retry}: {d:?} vs {cap:?}");
        }
    }

    #[test]
    fn builder_rejects_bad_config() {
        let err = Client::builder()
            .endpoint("https://x:1")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
        let err = Client::builder()
            .endpoint("ftp://localhost:3300")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
        let err = Client::builder().api_key("bad\nkey").build().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
        // Valid config, but no runtime.
        let err = Client::builder().api_key("k").build().unwrap_err();
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }

    #[test]
    fn debug_redacts_the_key() {
        let b = Client::builder().api_key("secret-123");
        assert!(!format!("{b:?}").contains("secret-123"));
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable_after_retries() {
        // Bind then drop a listener: nothing listens on that port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .retry_policy(
                RetryPolicy::new(2).backoff(Duration::from_millis(1), Duration::from_millis(2)),
            )
            .build()
            .unwrap();
        let err = client.health().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(!err.is_from_server());
        let err = Client::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
        assert!(err.is_unavailable());

        // The deadline covers retries and backoff: a long backoff is cut short.
        let client = Client::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .timeout(Duration::from_millis(300))
            .retry_policy(
                RetryPolicy::new(10).backoff(Duration::from_secs(5), Duration::from_secs(5)),
            )
            .build()
            .unwrap();
        let started = Instant::now();
        let err = client.get("m").await.unwrap_err();
        assert!(
            err.is_unavailable() || err.is_deadline_exceeded(),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    const HINT: &str =
        "is the Engram server running? Start it with `make serve` or `engram-server serve`";

    /// A port of 127.0.0.1 that nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn every_address_form_gives_the_same_endpoint() {
        for form in [
            "h:3300",
            "h:3300/",
            "http://h:3300",
            "http://h:3300/",
            "HTTP://h:3300",
            " http://h:3300 ",
            "grpc://h:3300",
            "grpc://h:3300/",
            "h",
        ] {
            assert_eq!(normalize_endpoint(form).unwrap(), "http://h:3300", "{form}");
        }
        for form in [
            "[::1]:3300",
            "http://[::1]:3300",
            "http://[::1]:3300/",
            "grpc://[::1]:3300",
            "[::1]",
        ] {
            assert_eq!(
                normalize_endpoint(form).unwrap(),
                "http://[::1]:3300",
                "{form}"
            );
        }
        for bad in [
            "ftp://h:1",
            "http://h:port",
            "http://",
            "http://h:99999",
            "http://h:3300/v1",
            "::1",
            "https://h:3300",
            "grpcs://h:3300",
        ] {
            assert!(
                matches!(normalize_endpoint(bad), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn the_default_endpoint_is_local() {
        assert_eq!(DEFAULT_ENDPOINT, "http://127.0.0.1:3300");
        assert_eq!(normalize_endpoint("").unwrap(), DEFAULT_ENDPOINT);
        let client = Client::builder().build().unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:3300");
        let client = Client::builder().endpoint("").build().unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:3300");
    }

    #[tokio::test]
    async fn a_closed_port_is_unavailable_naming_the_address() {
        let port = closed_port();
        let want =
            format!("cannot connect to http://127.0.0.1:{port} (connection refused): {HINT}");
        for form in [
            format!("127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}/"),
            format!("grpc://127.0.0.1:{port}"),
        ] {
            let client = Client::builder()
                .endpoint(form.clone())
                .retries(0)
                .build()
                .unwrap();
            let err = client.health().await.unwrap_err();
            println!("refused: {err}");
            assert!(err.is_unavailable() && !err.is_from_server(), "{err:?}");
            assert_eq!(err.message(), want, "{form}");
            assert_eq!(err.to_string(), format!("UNAVAILABLE: {want}"));
            let Err(err) = client.export("a").await else {
                panic!("export of a closed port succeeded");
            };
            assert_eq!(err.message(), want, "{form}");
            let err = Client::builder()
                .endpoint(form.clone())
                .connect()
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Transport { .. }) && err.is_unavailable(),
                "{err:?}"
            );
            assert_eq!(err.message(), want, "{form}");
        }
    }

    #[tokio::test]
    async fn a_closed_ipv6_port_is_named_in_brackets() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback
        };
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = Client::builder()
            .endpoint(format!("[::1]:{port}"))
            .retries(0)
            .build()
            .unwrap();
        let err = client.health().await.unwrap_err();
        assert!(
            err.message().starts_with(&format!(
                "cannot connect to http://[::1]:{port} (connection refused): "
            )),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unresolvable_host_is_unavailable() {
        let client = Client::builder()
            .endpoint("engram-host.invalid:3300")
            .retries(0)
            .build()
            .unwrap();
        let err = client.health().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(
            err.message().starts_with(
                "cannot connect to http://engram-host.invalid:3300 (DNS lookup failed"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_connect_timeout_is_unavailable() {
        // A listener that never accepts, its queue full (backlog 0): further SYNs are dropped.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fill = Vec::new();
        for _ in 0..3 {
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), connect).await
            {
                fill.push(stream);
            }
        }
        let want = format!(
            "cannot connect to http://127.0.0.1:{} (connection timed out): {HINT}",
            addr.port()
        );
        let client = Client::builder()
            .endpoint(format!("127.0.0.1:{}", addr.port()))
            .connect_timeout(Duration::from_millis(300))
            .retries(0)
            .build()
            .unwrap();
        let err = client.health().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(err.message(), want);
        let err = Client::builder()
            .endpoint(format!("127.0.0.1:{}", addr.port()))
            .connect_timeout(Duration::from_millis(300))
            .connect()
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(err.message(), want);
        drop((fill, listener));
    }
}

//! Builder methods on the request messages.
//!
//! Requests are the generated protobuf messages (so every field stays reachable) with chainable
//! setters added here: `new(..)` takes the required fields, every optional field has a setter that
//! takes and returns `Self`.
//!
//! ```
//! use engram_client::{MemoryFilter, MemoryType, RecallMode, RecallRequest, StoreMemoryRequest};
//!
//! let store = StoreMemoryRequest::new("agent-1", "The user prefers dark mode")
//!     .with_memory_type(MemoryType::Semantic)
//!     .with_importance(0.9)
//!     .with_tags(["preferences", "ui"])
//!     .with_metadata("source", "settings-page");
//! assert_eq!(store.importance, Some(0.9));
//!
//! let recall = RecallRequest::new("agent-1", "what theme does the user like?")
//!     .with_top_k(5)
//!     .with_mode(RecallMode::Hybrid)
//!     .with_filter(MemoryFilter::new().with_tags_any(["preferences"]).with_min_importance(0.5));
//! assert_eq!(recall.top_k, 5);
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use prost_types::{FieldMask, Struct, Timestamp, Value};

use crate::pb::engram::v1::*;

fn ts(t: SystemTime) -> Option<Timestamp> {
    Some(Timestamp::from(t))
}

fn secs(d: Duration) -> i64 {
    // Round up so that a sub-second TTL never becomes 0 ("never expires").
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(s).unwrap_or(i64::MAX)
}

fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

fn put(target: &mut Option<Struct>, key: impl Into<String>, value: impl Into<Value>) {
    target
        .get_or_insert_with(Struct::default)
        .fields
        .insert(key.into(), value.into());
}

/// Builds a `google.protobuf.Struct` (JSON object) from key/value pairs, for `metadata` fields.
///
/// ```
/// let meta = engram_client::json_object([("source", "chat"), ("lang", "en")]);
/// assert_eq!(meta.fields.len(), 2);
/// ```
pub fn json_object<I, K, V>(pairs: I) -> Struct
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<Value>,
{
    Struct {
        fields: pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<_, _>>(),
    }
}

impl StoreMemoryRequest {
    /// A request to store `content` for `agent_id`; every other field is optional.
    ///
    /// ```
    /// use std::time::Duration;
    /// use engram_client::{MemoryType, StoreMemoryRequest};
    ///
    /// let req = StoreMemoryRequest::new("agent-1", "Deploys happen on Tuesdays")
    ///     .with_memory_type(MemoryType::Procedural)
    ///     .with_importance(0.8)
    ///     .with_tag("ops")
    ///     .with_session_id("run-42")
    ///     .with_ttl(Duration::from_secs(3600))
    ///     .with_id("deploy-day"); // a client id makes the store safe to retry
    /// assert_eq!(req.ttl_seconds, 3600);
    /// ```
    pub fn new(agent_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            content: content.into(),
            ..Default::default()
        }
    }

    /// Sets a client-chosen id (1 to 128 characters of `[A-Za-z0-9._:-]`). Storing the same id
    /// and content again returns the existing memory, so the client retries such stores.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the kind of memory (default episodic).
    pub fn with_memory_type(mut self, memory_type: MemoryType) -> Self {
        self.set_memory_type(memory_type);
        self
    }

    /// Sets the importance, from 0 to 1 (default 0.5).
    pub fn with_importance(mut self, importance: f32) -> Self {
        self.importance = Some(importance);
        self
    }

    /// Replaces the tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = strings(tags);
        self
    }

    /// Adds one tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets one metadata key (metadata is a JSON object; call again for more keys).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        put(&mut self.metadata, key, value);
        self
    }

    /// Replaces the whole metadata object (see [`json_object`](crate::json_object())).
    pub fn with_metadata_object(mut self, metadata: Struct) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Sets the session (conversation or task run) the memory belongs to.
    pub fn with_session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = session_id.into();
        self
    }

    /// Sets when the remembered thing happened (default: now).
    pub fn with_event_time(mut self, time: SystemTime) -> Self {
        self.event_time = ts(time);
        self
    }

    /// Makes the memory expire after `ttl` (whole seconds, rounded up).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_seconds = secs(ttl);
        self
    }

    /// Makes the memory expire at `time`.
    pub fn with_expires_at(mut self, time: SystemTime) -> Self {
        self.expires_at = ts(time);
        self
    }
}

impl MemoryFilter {
    /// An empty filter (matches everything); add conditions with the setters, which combine
    /// with AND.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use engram_client::{MemoryFilter, MemoryType};
    ///
    /// let week_ago = SystemTime::now() - Duration::from_secs(7 * 86400);
    /// let filter = MemoryFilter::new()
    ///     .with_memory_types([MemoryType::Episodic])
    ///     .with_tags_all(["billing", "bug"])
    ///     .with_created_between(Some(week_ago), None)
    ///     .with_metadata_equals("customer", "acme");
    /// assert_eq!(filter.tags_all.len(), 2);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Matches any of these memory types.
    pub fn with_memory_types(mut self, types: impl IntoIterator<Item = MemoryType>) -> Self {
        self.memory_types = types.into_iter().map(|t| t as i32).collect();
        self
    }

    /// Matches memories carrying at least one of these tags.
    pub fn with_tags_any<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags_any = strings(tags);
        self
    }

    /// Matches memories carrying all of these tags.
    pub fn with_tags_all<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags_all = strings(tags);
        self
    }

    /// Matches memories of this session.
    pub fn with_session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = session_id.into();
        self
    }

    /// Matches memories whose `event_time` is in `[start, end)`; `None` leaves a bound open.
    pub fn with_event_between(
        mut self,
        start: Option<SystemTime>,
        end: Option<SystemTime>,
    ) -> Self {
        self.event_time = Some(TimeRange {
            start_time: start.and_then(ts),
            end_time: end.and_then(ts),
        });
        self
    }

    /// Matches memories whose `created_at` is in `[start, end)`; `None` leaves a bound open.
    pub fn with_created_between(
        mut self,
        start: Option<SystemTime>,
        end: Option<SystemTime>,
    ) -> Self {
        self.created_time = Some(TimeRange {
            start_time: start.and_then(ts),
            end_time: end.and_then(ts),
        });
        self
    }

    /// Matches memories whose importance is at least `min`.
    pub fn with_min_importance(mut self, min: f32) -> Self {
        self.min_importance = Some(min);
        self
    }

    /// Matches memories whose metadata has `key` equal to `value` (call again for more keys).
    pub fn with_metadata_equals(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        put(&mut self.metadata_equals, key, value);
        self
    }

    /// Matches only these memory ids.
    pub fn with_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ids = strings(ids);
        self
    }
}

impl RecallRequest {
    /// A recall of `query` over `agent_id`'s memories (top 10, hybrid, no filter by default).
    ///
    /// ```
    /// use engram_client::{RecallMode, RecallRequest};
    ///
    /// let req = RecallRequest::new("agent-1", "ERR_CONN_RESET")
    ///     .with_top_k(3)
    ///     .with_mode(RecallMode::Keyword)
    ///     .with_explain(true)
    ///     .with_min_score(0.1);
    /// assert_eq!(req.mode(), RecallMode::Keyword);
    /// ```
    pub fn new(agent_id: impl Into<String>, query: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            query: query.into(),
            ..Default::default()
        }
    }

    /// How many memories to return, 1 to the server's `max_top_k` (default 10).
    pub fn with_top_k(mut self, top_k: i32) -> Self {
        self.top_k = top_k;
        self
    }

    /// Only memories matching `filter`, applied before `top_k`.
    pub fn with_filter(mut self, filter: MemoryFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// How candidates are found (default hybrid).
    pub fn with_mode(mut self, mode: RecallMode) -> Self {
        self.set_mode(mode);
        self
    }

    /// Returns the parts of each score in `explanation`.
    pub fn with_explain(mut self, explain: bool) -> Self {
        self.explain = explain;
        self
    }

    /// Also returns memories linked to the results (one hop), marked `associated`.
    pub fn with_include_associated(mut self, include: bool) -> Self {
        self.include_associated = include;
        self
    }

    /// Drops results scoring below `min_score`.
    pub fn with_min_score(mut self, min_score: f32) -> Self {
        self.min_score = min_score;
        self
    }
}

impl ListMemoriesRequest {
    /// Lists `agent_id`'s memories, newest first, 50 a page.
    ///
    /// ```
    /// use engram_client::{ListMemoriesRequest, MemoryFilter};
    ///
    /// let req = ListMemoriesRequest::new("agent-1")
    ///     .with_page_size(100)
    ///     .with_order_by("importance desc")
    ///     .with_filter(MemoryFilter::new().with_session_id("run-42"));
    /// assert_eq!(req.page_size, 100);
    /// ```
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            ..Default::default()
        }
    }

    /// Page size, 1 to the server's `max_page_size` (default 50).
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Starts at the page of this token (a previous page's `next_page_token`).
    pub fn with_page_token(mut self, page_token: impl Into<String>) -> Self {
        self.page_token = page_token.into();
        self
    }

    /// Only memories matching `filter`.
    pub fn with_filter(mut self, filter: MemoryFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sort order: `created_at desc` (default), `created_at asc`, `updated_at desc|asc`,
    /// `importance desc|asc`, `event_time desc|asc`.
    pub fn with_order_by(mut self, order_by: impl Into<String>) -> Self {
        self.order_by = order_by.into();
        self
    }
}

impl UpdateMemoryRequest {
    /// An update of memory `id`. Each setter changes one field and adds it to the update mask,
    /// so only the fields you set change (and setting a field to its default, e.g. no tags,
    /// clears it).
    ///
    /// ```
    /// use engram_client::UpdateMemoryRequest;
    ///
    /// let req = UpdateMemoryRequest::new("mem-1").with_content("Deploys moved to Wednesdays").with_tags(Vec::<String>::new());
    /// assert_eq!(req.update_mask.unwrap().paths, ["content", "tags"]);
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            memory: Some(Memory {
                id: id.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field(mut self, path: &str, set: impl FnOnce(&mut Memory)) -> Self {
        set(self.memory.get_or_insert_with(Memory::default));
        let mask = self.update_mask.get_or_insert_with(FieldMask::default);
        if !mask.paths.iter().any(|p| p == path) {
            mask.paths.push(path.to_owned());
        }
        self
    }

    /// Requires the memory to belong to `agent_id`.
    pub fn with_agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = agent_id.into();
        self
    }

    /// Replaces the content (the memory is re-embedded).
    pub fn with_content(self, content: impl Into<String>) -> Self {
        let content = content.into();
        self.field("content", |m| m.content = content)
    }

    /// Changes the kind of memory.
    pub fn with_memory_type(self, memory_type: MemoryType) -> Self {
        self.field("memory_type", |m| m.set_memory_type(memory_type))
    }

    /// Changes the importance (0 to 1).
    pub fn with_importance(self, importance: f32) -> Self {
        self.field("importance", |m| m.importance = importance)
    }

    /// Replaces the tags.
    pub fn with_tags<I, S>(self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tags = strings(tags);
        self.field("tags", |m| m.tags = tags)
    }

    /// Replaces the whole metadata object.
    pub fn with_metadata(self, metadata: Struct) -> Self {
        self.field("metadata", |m| m.metadata = Some(metadata))
    }

    /// Changes the session.
    pub fn with_session_id(self, session_id: impl Into<String>) -> Self {
        let session_id = session_id.into();
        self.field("session_id", |m| m.session_id = session_id)
    }

    /// Changes when the remembered thing happened.
    pub fn with_event_time(self, time: SystemTime) -> Self {
        self.field("event_time", |m| m.event_time = ts(time))
    }

    /// Makes the memory expire at `time`.
    pub fn with_expires_at(self, time: SystemTime) -> Self {
        self.field("expires_at", |m| m.expires_at = ts(time))
    }

    /// Makes the memory expire `ttl` from now (whole seconds, rounded up).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_seconds = secs(ttl);
        self
    }
}

impl ForgetMemoriesRequest {
    /// Deletes `agent_id`'s memories matching `filter` (which must not be empty).
    ///
    /// ```
    /// use engram_client::{ForgetMemoriesRequest, MemoryFilter};
    ///
    /// let req = ForgetMemoriesRequest::new("agent-1", MemoryFilter::new().with_tags_any(["scratch"]))
    ///     .with_dry_run(true);
    /// assert!(req.dry_run);
    /// ```
    pub fn new(agent_id: impl Into<String>, filter: MemoryFilter) -> Self {
        Self {
            agent_id: agent_id.into(),
            filter: Some(filter),
            dry_run: false,
        }
    }

    /// Only counts and lists what would be deleted.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

impl LinkMemoriesRequest {
    /// Links `source_id` to `target_id` (relation `related_to`, weight 1 by default).
    ///
    /// ```
    /// let req = engram_client::LinkMemoriesRequest::new("agent-1", "m1", "m2")
    ///     .with_relation("caused_by")
    ///     .with_weight(0.7);
    /// assert_eq!(req.weight, Some(0.7));
    /// ```
    pub fn new(
        agent_id: impl Into<String>,
        source_id: impl Into<String>,
        target_id: impl Into<String>,
    ) -> Self {
        Self {
            agent_id: agent_id.into(),
            source_id: source_id.into(),
            target_id: target_id.into(),
            ..Default::default()
        }
    }

    /// What the link means (1 to 64 characters of `[a-z0-9_]`).
    pub fn with_relation(mut self, relation: impl Into<String>) -> Self {
        self.relation = relation.into();
        self
    }

    /// Strength of the link, 0 to 1.
    pub fn with_weight(mut self, weight: f32) -> Self {
        self.weight = Some(weight);
        self
    }
}

impl UnlinkMemoriesRequest {
    /// Removes every link from `source_id` to `target_id` (or only one relation, see
    /// [`relation`](Self::with_relation)).
    ///
    /// ```
    /// let req = engram_client::UnlinkMemoriesRequest::new("agent-1", "m1", "m2").with_relation("caused_by");
    /// assert_eq!(req.relation, "caused_by");
    /// ```
    pub fn new(
        agent_id: impl Into<String>,
        source_id: impl Into<String>,
        target_id: impl Into<String>,
    ) -> Self {
        Self {
            agent_id: agent_id.into(),
            source_id: source_id.into(),
            target_id: target_id.into(),
            relation: String::new(),
        }
    }

    /// Removes only links with this relation.
    pub fn with_relation(mut self, relation: impl Into<String>) -> Self {
        self.relation = relation.into();
        self
    }
}

impl GetMemoryGraphRequest {
    /// The graph around memory `id` (depth 1, every relation, up to 100 memories by default).
    ///
    /// ```
    /// let req = engram_client::GetMemoryGraphRequest::new("agent-1", "m1").with_depth(2).with_relations(["caused_by"]);
    /// assert_eq!(req.depth, 2);
    /// ```
    pub fn new(agent_id: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            id: id.into(),
            ..Default::default()
        }
    }

    /// How many links to follow, 1 to the server's `max_graph_depth`.
    pub fn with_depth(mut self, depth: i32) -> Self {
        self.depth = depth;
        self
    }

    /// Follows only these relations.
    pub fn with_relations<I, S>(mut self, relations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.relations = strings(relations);
        self
    }

    /// Returns at most this many memories.
    pub fn with_max_nodes(mut self, max_nodes: i32) -> Self {
        self.max_nodes = max_nodes;
        self
    }
}

impl ExportMemoriesRequest {
    /// Exports every memory of `agent_id`.
    ///
    /// ```
    /// use engram_client::{ExportMemoriesRequest, MemoryFilter};
    /// let req = ExportMemoriesRequest::new("agent-1").with_filter(MemoryFilter::new().with_tags_any(["keep"]));
    /// assert!(req.filter.is_some());
    /// ```
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            filter: None,
        }
    }

    /// Exports only memories matching `filter`.
    pub fn with_filter(mut self, filter: MemoryFilter) -> Self {
        self.filter = Some(filter);
        self
    }
}

impl ImportMemoriesRequest {
    /// Imports `memory` as exported (id, times and version are kept).
    ///
    /// ```
    /// use engram_client::{ImportMemoriesRequest, Memory};
    /// let req = ImportMemoriesRequest::new(Memory::default()).with_agent_id("agent-copy");
    /// assert_eq!(req.agent_id, "agent-copy");
    /// ```
    pub fn new(memory: Memory) -> Self {
        Self {
            memory: Some(memory),
            agent_id: String::new(),
        }
    }

    /// Imports into `agent_id` instead of the memory's own agent.
    pub fn with_agent_id(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = agent_id.into();
        self
    }
}

impl From<Memory> for ImportMemoriesRequest {
    fn from(memory: Memory) -> Self {
        Self::new(memory)
    }
}

impl ListAgentsRequest {
    /// Lists agents, 50 a page.
    ///
    /// ```
    /// let req = engram_client::ListAgentsRequest::new().with_page_size(10);
    /// assert_eq!(req.page_size, 10);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Page size, 1 to the server's `max_page_size` (default 50).
    pub fn with_page_size(mut self, page_size: i32) -> Self {
        self.page_size = page_size;
        self
    }

    /// Starts at the page of this token.
    pub fn with_page_token(mut self, page_token: impl Into<String>) -> Self {
        self.page_token = page_token.into();
        self
    }
}

impl CreateApiKeyRequest {
    /// A key called `name` with `role`, valid for every agent and forever by default.
    ///
    /// ```
    /// use std::time::Duration;
    /// use engram_client::{ApiKeyRole, CreateApiKeyRequest};
    ///
    /// let req = CreateApiKeyRequest::new("dashboard", ApiKeyRole::ReadOnly)
    ///     .with_agent_ids(["agent-1"])
    ///     .with_ttl(Duration::from_secs(86400));
    /// assert_eq!(req.role(), ApiKeyRole::ReadOnly);
    /// ```
    pub fn new(name: impl Into<String>, role: ApiKeyRole) -> Self {
        Self {
            name: name.into(),
            role: role as i32,
            ..Default::default()
        }
    }

    /// Pins the key to these agents.
    pub fn with_agent_ids<I, S>(mut self, agent_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.agent_ids = strings(agent_ids);
        self
    }

    /// Pins the key to agents whose id starts with `prefix`.
    pub fn with_agent_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.agent_id_prefix = prefix.into();
        self
    }

    /// Makes the key expire after `ttl` (whole seconds, rounded up).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_seconds = secs(ttl);
        self
    }
}

impl EmbedRequest {
    /// Embeds `texts` as documents (text to be stored and searched).
    ///
    /// ```
    /// use engram_client::{EmbedRequest, EmbeddingInputType};
    /// let req = EmbedRequest::new(["hello", "world"]).with_input_type(EmbeddingInputType::Query);
    /// assert_eq!(req.texts.len(), 2);
    /// ```
    pub fn new<I, S>(texts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            texts: strings(texts),
            input_type: 0,
        }
    }

    /// Whether the texts are documents or queries.
    pub fn with_input_type(mut self, input_type: EmbeddingInputType) -> Self {
        self.set_input_type(input_type);
        self
    }
}

/// Requests that name one thing by id: `client.get("mem-1")` works, and so does
/// `client.get(GetMemoryRequest::new("mem-1").with_agent_id("agent-1"))`.
macro_rules! by_id {
    ($($ty:ident . $field:ident),* $(,)?) => {$(
        #[allow(clippy::needless_update, reason = "some of these requests have only this field")]
        impl From<&str> for $ty {
            fn from(value: &str) -> Self {
                Self { $field: value.to_owned(), ..Default::default() }
            }
        }
        #[allow(clippy::needless_update, reason = "some of these requests have only this field")]
        impl From<String> for $ty {
            fn from(value: String) -> Self {
                Self { $field: value, ..Default::default() }
            }
        }
        #[allow(clippy::needless_update, reason = "some of these requests have only this field")]
        impl From<&String> for $ty {
            fn from(value: &String) -> Self {
                Self { $field: value.clone(), ..Default::default() }
            }
        }
    )*};
}

by_id!(
    GetMemoryRequest.id,
    DeleteMemoryRequest.id,
    GetMemoryHistoryRequest.id,
    ExportMemoriesRequest.agent_id,
    GetAgentRequest.agent_id,
    DeleteAgentRequest.agent_id,
    RevokeApiKeyRequest.id,
);

macro_rules! scoped_by_id {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// A request for the memory `id`, of any agent the API key may read.
            pub fn new(id: impl Into<String>) -> Self {
                Self { id: id.into(), agent_id: String::new() }
            }

            /// Requires the memory to belong to `agent_id` (`NOT_FOUND` otherwise).
            pub fn with_agent_id(mut self, agent_id: impl Into<String>) -> Self {
                self.agent_id = agent_id.into();
                self
            }
        }
    )*};
}

scoped_by_id!(
    GetMemoryRequest,
    DeleteMemoryRequest,
    GetMemoryHistoryRequest
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_secs(5)), 5);
    }

    #[test]
    fn update_mask_lists_each_field_once() {
        let req = UpdateMemoryRequest::new("m")
            .with_importance(0.0)
            .with_importance(0.2)
            .with_memory_type(MemoryType::Working)
            .with_agent_id("a");
        assert_eq!(
            req.update_mask.unwrap().paths,
            ["importance", "memory_type"]
        );
        let memory = req.memory.unwrap();
        assert_eq!(memory.importance, 0.2);
        assert_eq!(memory.memory_type(), MemoryType::Working);
        assert_eq!(req.agent_id, "a");
    }

    #[test]
    fn by_id_conversions() {
        let id = String::from("x");
        assert_eq!(GetMemoryRequest::from(&id).id, "x");
        assert_eq!(DeleteAgentRequest::from("a").agent_id, "a");
        assert_eq!(
            GetMemoryHistoryRequest::new("m")
                .with_agent_id("a")
                .agent_id,
            "a"
        );
    }
}

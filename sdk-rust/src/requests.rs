//! What the generated request builders (`src/pb/engram.v1.builders.rs`) need, and the builders
//! that are not generated.
//!
//! Requests are the generated protobuf messages (so every field stays reachable) with chainable
//! builder methods, generated from the proto: `new(..)` takes the fields the proto comments mark
//! `Required`, every other field has a `with_*` setter that takes and returns `Self`. Only
//! [`UpdateMemoryRequest`]'s setters, which also fill its update mask, are written here.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use engram_client::*;
//!
//! let store = StoreMemoryRequest::new("agent-1", "The user prefers dark mode")
//!     .with_memory_type(MemoryType::Semantic)
//!     .with_importance(0.9)
//!     .with_tags(["preferences", "ui"])
//!     .with_metadata("source", "settings-page")
//!     .with_tag("theme")
//!     .with_session_id("run-42")
//!     .with_ttl(Duration::from_millis(3_600_001)) // whole seconds, rounded up
//!     .with_id("dark-mode"); // a client id makes the store safe to retry
//! assert_eq!((store.importance, store.ttl_seconds), (Some(0.9), 3601));
//! assert_eq!(store.tags, ["preferences", "ui", "theme"]);
//!
//! let week_ago = SystemTime::now() - Duration::from_secs(7 * 86400);
//! let filter = MemoryFilter::new()
//!     .with_memory_types([MemoryType::Episodic])
//!     .with_tags_all(["billing", "bug"])
//!     .with_created_between(Some(week_ago), None)
//!     .with_metadata_equals("customer", "acme")
//!     .with_min_importance(0.5);
//! assert_eq!(filter.tags_all.len(), 2);
//!
//! let recall = RecallRequest::new("agent-1", "what theme does the user like?")
//!     .with_top_k(5)
//!     .with_mode(RecallMode::Keyword)
//!     .with_explain(true)
//!     .with_min_score(0.1)
//!     .with_filter(filter.clone());
//! assert_eq!((recall.top_k, recall.mode()), (5, RecallMode::Keyword));
//!
//! let list = ListMemoriesRequest::new("agent-1").with_page_size(100).with_order_by("importance desc");
//! assert_eq!(list.page_size, 100);
//! let forget = ForgetMemoriesRequest::new("agent-1", filter).with_dry_run(true);
//! assert!(forget.dry_run);
//! let link = LinkMemoriesRequest::new("agent-1", "m1", "m2").with_relation("caused_by").with_weight(0.7);
//! assert_eq!(link.weight, Some(0.7));
//! let unlink = UnlinkMemoriesRequest::new("agent-1", "m1", "m2").with_relation("caused_by");
//! assert_eq!(unlink.relation, "caused_by");
//! let graph = GetMemoryGraphRequest::new("agent-1", "m1").with_depth(2).with_relations(["caused_by"]);
//! assert_eq!(graph.depth, 2);
//! let export = ExportMemoriesRequest::new("agent-1").with_filter(MemoryFilter::new().with_tags_any(["keep"]));
//! assert!(export.filter.is_some());
//! let import = ImportMemoriesRequest::new(Memory::default()).with_agent_id("agent-copy");
//! assert_eq!(import.agent_id, "agent-copy");
//! assert_eq!(ListAgentsRequest::new().with_page_size(10).page_size, 10);
//! let key = CreateApiKeyRequest::new("dashboard", ApiKeyRole::ReadOnly)
//!     .with_agent_ids(["agent-1"])
//!     .with_ttl(Duration::from_secs(86400));
//! assert_eq!(key.role(), ApiKeyRole::ReadOnly);
//! let embed = EmbedRequest::new(["hello", "world"]).with_input_type(EmbeddingInputType::Query);
//! assert_eq!(embed.texts.len(), 2);
//!
//! // A request naming one thing converts from its id: `client.get("mem-1")`.
//! assert_eq!(GetMemoryRequest::from("mem-1"), GetMemoryRequest::new("mem-1"));
//! assert_eq!(GetMemoryHistoryRequest::new("m").with_agent_id("a").agent_id, "a");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pbjson_types::{FieldMask, Struct, Timestamp, Value};

use crate::pb::engram::v1::{Memory, MemoryFilter, MemoryType, TimeRange, UpdateMemoryRequest};

/// A `google.protobuf.Timestamp` of `time` (timestamps in requests and responses are
/// [`pbjson_types::Timestamp`]); [`system_time`] converts back.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let ts = engram_client::timestamp(UNIX_EPOCH + Duration::from_millis(1500));
/// assert_eq!((ts.seconds, ts.nanos), (1, 500_000_000));
/// let before = engram_client::timestamp(UNIX_EPOCH - Duration::from_millis(1500));
/// assert_eq!((before.seconds, before.nanos), (-2, 500_000_000));
/// ```
pub fn timestamp(time: SystemTime) -> Timestamp {
    let (seconds, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (secs_i64(after), after.subsec_nanos()),
        // Before 1970: seconds round down, nanos count forward (as the proto defines).
        Err(err) => match (secs_i64(err.duration()), err.duration().subsec_nanos()) {
            (secs, 0) => (-secs, 0),
            (secs, nanos) => (-secs - 1, 1_000_000_000 - nanos),
        },
    };
    Timestamp {
        seconds,
        nanos: i32::try_from(nanos).expect("below 10^9"),
    }
}

/// The `SystemTime` of a timestamp; `None` when it is out of range or not normalised.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1500);
/// assert_eq!(engram_client::system_time(&engram_client::timestamp(t)), Some(t));
/// ```
pub fn system_time(timestamp: &Timestamp) -> Option<SystemTime> {
    let nanos = u32::try_from(timestamp.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    let secs = Duration::from_secs(timestamp.seconds.unsigned_abs());
    let whole = if timestamp.seconds >= 0 {
        UNIX_EPOCH.checked_add(secs)
    } else {
        UNIX_EPOCH.checked_sub(secs)
    };
    whole?.checked_add(Duration::from_nanos(nanos.into()))
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A duration in whole seconds, rounded up so that a sub-second TTL never becomes 0 ("never
/// expires").
pub(crate) fn whole_seconds(d: Duration) -> i64 {
    secs_i64(d).saturating_add(i64::from(d.subsec_nanos() > 0))
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
    V: IntoValue,
{
    (pairs.into_iter())
        .map(|(k, v)| (k.into(), v.into_value()))
        .collect()
}

/// A value of a JSON object field (`metadata`): a string, number, bool, or a
/// [`pbjson_types::Value`], `Struct` or `ListValue` (64-bit integers are left out: JSON numbers
/// are `f64`).
///
/// ```
/// use engram_client::{IntoValue, json_object};
/// let meta = json_object([("turn", 3.into_value()), ("ok", true.into_value()), ("who", "ada".into_value())]);
/// assert_eq!(meta.fields["turn"], 3.0.into_value());
/// ```
pub trait IntoValue {
    /// The `google.protobuf.Value` of `self`.
    fn into_value(self) -> Value;
}

macro_rules! into_value {
    ($($ty:ty => |$v:ident| $value:expr),* $(,)?) => {$(
        impl IntoValue for $ty {
            fn into_value(self) -> Value {
                let $v = self;
                $value
            }
        }
    )*};
}

into_value!(
    Value => |v| v,
    &str => |v| Value::from(v.to_owned()),
    String => |v| Value::from(v),
    &String => |v| Value::from(v.clone()),
    bool => |v| Value::from(v),
    f64 => |v| Value::from(v),
    f32 => |v| Value::from(f64::from(v)),
    i32 => |v| Value::from(f64::from(v)),
    u32 => |v| Value::from(f64::from(v)),
    i16 => |v| Value::from(f64::from(v)),
    u16 => |v| Value::from(f64::from(v)),
    i8 => |v| Value::from(f64::from(v)),
    u8 => |v| Value::from(f64::from(v)),
    Struct => |v| Value::from(v),
    pbjson_types::ListValue => |v| Value::from(v),
    Vec<Value> => |v| Value::from(v),
);

impl MemoryFilter {
    /// Matches memories whose `event_time` is in `[start, end)`; `None` leaves a bound open
    /// (shorthand for [`with_event_time`](Self::with_event_time) and a [`TimeRange`]).
    pub fn with_event_between(self, start: Option<SystemTime>, end: Option<SystemTime>) -> Self {
        self.with_event_time(range(start, end))
    }

    /// Matches memories whose `created_at` is in `[start, end)`; `None` leaves a bound open
    /// (shorthand for [`with_created_time`](Self::with_created_time) and a [`TimeRange`]).
    pub fn with_created_between(self, start: Option<SystemTime>, end: Option<SystemTime>) -> Self {
        self.with_created_time(range(start, end))
    }
}

fn range(start: Option<SystemTime>, end: Option<SystemTime>) -> TimeRange {
    TimeRange {
        start_time: start.map(timestamp),
        end_time: end.map(timestamp),
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
    pub fn with_tags(self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let tags = tags.into_iter().map(Into::into).collect();
        self.field("tags", |m| m.tags = tags)
    }

    /// Replaces the whole metadata object (see [`json_object`](crate::json_object())).
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
        self.field("event_time", |m| m.event_time = Some(timestamp(time)))
    }

    /// Makes the memory expire at `time`.
    pub fn with_expires_at(self, time: SystemTime) -> Self {
        self.field("expires_at", |m| m.expires_at = Some(timestamp(time)))
    }

    /// Makes the memory expire `ttl` from now (whole seconds, rounded up).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_seconds = whole_seconds(ttl);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::engram::v1::{DeleteAgentRequest, GetMemoryRequest};

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(5)), 5);
        assert_eq!(whole_seconds(Duration::MAX), i64::MAX);
    }

    #[test]
    fn timestamps_round_trip() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123),
            UNIX_EPOCH - Duration::new(86_400, 1),
            UNIX_EPOCH - Duration::from_secs(3),
        ] {
            let ts = timestamp(t);
            assert!((0..1_000_000_000).contains(&ts.nanos), "{ts:?}");
            assert_eq!(system_time(&ts), Some(t));
        }
        let bad = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(system_time(&bad), None);
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
    }
}

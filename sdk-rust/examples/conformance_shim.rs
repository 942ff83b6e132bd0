//! Conformance shim for the Rust SDK: JSON Lines on stdin, `engram_client::Client` calls, JSON
//! Lines on stdout. The protocol is described in `conformance/README.md`; the runner
//! (`python -m conformance --sdk rust`) builds and starts this example.
//!
//! Built on the SDK's public API only: [`Client`], the request builders (`StoreMemoryRequest::new`
//! and its `with_*` setters...), the re-exported message types and [`engram_client::Error`]. Each
//! request's proto3 JSON is turned into the builder calls a Rust user would write; a field the
//! typed API cannot express (an unknown field, a negative TTL, a field an update cannot change) is
//! refused before sending, as `INVALID_ARGUMENT` with a message starting `client-side:`. Responses
//! are written as proto3 JSON with the proto field names (int64 as strings, enums by name,
//! timestamps in RFC 3339, bytes in base64).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use engram_client::prost_types::{self, ListValue, Struct, Timestamp, value::Kind};
use engram_client::{
    Agent, ApiKey, ApiKeyRole, Client, ClusterNode, CreateApiKeyRequest, EmbedRequest,
    EmbeddingInputType, ExportMemoriesRequest, ForgetMemoriesRequest, GetMemoryGraphRequest,
    GetMemoryHistoryRequest, GetMemoryRequest, ImportMemoriesRequest, LinkMemoriesRequest,
    ListAgentsRequest, ListMemoriesRequest, Memory, MemoryFilter, MemoryLink, MemoryType,
    RecallMode, RecallRequest, RecallResponse, RecalledMemory, ScoreExplanation, ServerLimits,
    StoreMemoryRequest, StreamExt, UnlinkMemoriesRequest, UpdateMemoryRequest,
};
use engram_client::{DeleteMemoryRequest, json_object};
use serde_json::{Map, Value as Json, json};

/// The unary deadline when the runner sets none (the runner's own REST client waits as long).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call failed: the SDK's error, or the shim refusing what the typed API cannot express.
enum Failure {
    Sdk(engram_client::Error),
    ClientSide(String),
}

impl From<engram_client::Error> for Failure {
    fn from(err: engram_client::Error) -> Self {
        Failure::Sdk(err)
    }
}

impl Failure {
    fn to_json(&self) -> Json {
        match self {
            Failure::ClientSide(message) => {
                json!({"code": "INVALID_ARGUMENT", "message": format!("client-side: {message}")})
            }
            // The SDK refused the request (or its configuration) before sending it.
            Failure::Sdk(
                err @ (engram_client::Error::InvalidArgument(_)
                | engram_client::Error::InvalidConfig(_)),
            ) => {
                json!({"code": err.code_name(), "message": format!("client-side: {}", err.message())})
            }
            Failure::Sdk(err) => json!({"code": err.code_name(), "message": err.message()}),
        }
    }
}

type Shim<T> = Result<T, Failure>;

fn refuse<T>(message: impl Into<String>) -> Shim<T> {
    Err(Failure::ClientSide(message.into()))
}

/// What a call answers: one message, or the messages of a server stream.
enum Reply {
    One(Json),
    Many(Vec<Json>),
}

// ------------------------------------------------------------------------------------------------
// Reading proto3 JSON requests
// ------------------------------------------------------------------------------------------------

/// `memoryType` → `memory_type` (proto3 JSON accepts both spellings).
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// One request message: its fields by proto name, each checked against the fields the shim
/// knows how to pass to the SDK.
struct Msg<'a> {
    name: &'static str,
    fields: HashMap<String, &'a Json>,
}

impl<'a> Msg<'a> {
    fn new(name: &'static str, value: &'a Json, known: &[&str]) -> Shim<Self> {
        let object = match value {
            Json::Object(object) => object,
            Json::Null => {
                return Ok(Self {
                    name,
                    fields: HashMap::new(),
                });
            }
            other => return refuse(format!("{name} must be a JSON object, got {other}")),
        };
        let mut fields = HashMap::new();
        for (key, value) in object {
            let key = snake_case(key);
            if !known.contains(&key.as_str()) {
                return refuse(format!("{name}.{key} cannot be set through the typed API"));
            }
            if !value.is_null() {
                fields.insert(key, value);
            }
        }
        Ok(Self { name, fields })
    }

    fn get(&self, field: &str) -> Option<&'a Json> {
        self.fields.get(field).copied()
    }

    fn bad<T>(&self, field: &str, want: &str, got: &Json) -> Shim<T> {
        refuse(format!("{}.{field} must be {want}, got {got}", self.name))
    }

    fn opt_string(&self, field: &str) -> Shim<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => self.bad(field, "a string", other),
        }
    }

    fn string(&self, field: &str) -> Shim<String> {
        Ok(self.opt_string(field)?.unwrap_or_default())
    }

    fn opt_i64(&self, field: &str) -> Shim<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(Json::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
                Ok(n.as_f64().map(|f| f as i64))
            }
            // proto3 JSON writes 64-bit integers as strings.
            Some(v @ Json::String(s)) => match s.parse() {
                Ok(i) => Ok(Some(i)),
                Err(_) => self.bad(field, "an integer", v),
            },
            Some(other) => self.bad(field, "an integer", other),
        }
    }

    fn opt_i32(&self, field: &str) -> Shim<Option<i32>> {
        match self.opt_i64(field)? {
            None => Ok(None),
            Some(i) => match i32::try_from(i) {
                Ok(i) => Ok(Some(i)),
                Err(_) => refuse(format!("{}.{field}: {i} does not fit an int32", self.name)),
            },
        }
    }

    fn opt_f32(&self, field: &str) -> Shim<Option<f32>> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::Number(n)) => Ok(n.as_f64().map(|f| f as f32)),
            Some(v @ Json::String(s)) => match s.parse() {
                Ok(f) => Ok(Some(f)),
                Err(_) => self.bad(field, "a number", v),
            },
            Some(other) => self.bad(field, "a number", other),
        }
    }

    fn bool(&self, field: &str) -> Shim<bool> {
        match self.get(field) {
            None => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(other) => self.bad(field, "a boolean", other),
        }
    }

    fn opt_strings(&self, field: &str) -> Shim<Option<Vec<String>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Json::String(s) => Ok(s.clone()),
                    other => self.bad(field, "a list of strings", other),
                })
                .collect::<Shim<Vec<_>>>()
                .map(Some),
            Some(other) => self.bad(field, "a list of strings", other),
        }
    }

    fn opt_time(&self, field: &str) -> Shim<Option<SystemTime>> {
        let Some(text) = self.opt_string(field)? else {
            return Ok(None);
        };
        let parsed = Timestamp::from_str(&text)
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok());
        match parsed {
            Some(time) => Ok(Some(time)),
            None => refuse(format!(
                "{}.{field}: {text:?} is not an RFC 3339 time",
                self.name
            )),
        }
    }

    fn opt_timestamp(&self, field: &str) -> Shim<Option<Timestamp>> {
        Ok(self.opt_time(field)?.map(Timestamp::from))
    }

    fn opt_struct(&self, field: &str) -> Shim<Option<Struct>> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::Object(object)) => Ok(Some(pb_struct(object))),
            Some(other) => self.bad(field, "a JSON object", other),
        }
    }

    /// An enum field, by name (`MEMORY_TYPE_SEMANTIC`) or number.
    fn opt_enum<T: TryFrom<i32>>(
        &self,
        field: &str,
        from_name: fn(&str) -> Option<T>,
    ) -> Shim<Option<T>> {
        match self.get(field) {
            None => Ok(None),
            Some(value) => parse_enum(value, from_name).map(Some).ok_or_else(|| {
                Failure::ClientSide(format!("{}.{field}: unknown value {value}", self.name))
            }),
        }
    }

    fn opt_enums<T: TryFrom<i32>>(
        &self,
        field: &str,
        from_name: fn(&str) -> Option<T>,
    ) -> Shim<Option<Vec<T>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| {
                    parse_enum(item, from_name).ok_or_else(|| {
                        Failure::ClientSide(format!("{}.{field}: unknown value {item}", self.name))
                    })
                })
                .collect::<Shim<Vec<_>>>()
                .map(Some),
            Some(other) => self.bad(field, "a list of enum values", other),
        }
    }

    /// A duration in whole seconds for a `with_ttl(Duration)` setter: 0 (or absent) is no TTL,
    /// and a negative one has no `Duration`.
    fn opt_ttl(&self, field: &str) -> Shim<Option<Duration>> {
        match self.opt_i64(field)? {
            None | Some(0) => Ok(None),
            Some(secs) => match u64::try_from(secs) {
                Ok(secs) => Ok(Some(Duration::from_secs(secs))),
                Err(_) => refuse(format!(
                    "{}.{field} = {secs}: a TTL is a std::time::Duration, which cannot be negative",
                    self.name
                )),
            },
        }
    }
}

fn parse_enum<T: TryFrom<i32>>(value: &Json, from_name: fn(&str) -> Option<T>) -> Option<T> {
    match value {
        Json::String(name) => from_name(name),
        Json::Number(n) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .and_then(|i| T::try_from(i).ok()),
        _ => None,
    }
}

fn pb_value(value: &Json) -> prost_types::Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(pb_value).collect(),
        }),
        Json::Object(object) => Kind::StructValue(pb_struct(object)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn pb_struct(object: &Map<String, Json>) -> Struct {
    json_object(object.iter().map(|(k, v)| (k.clone(), pb_value(v))))
}

fn filter(value: &Json) -> Shim<MemoryFilter> {
    let m = Msg::new(
        "MemoryFilter",
        value,
        &[
            "memory_types",
            "tags_any",
            "tags_all",
            "session_id",
            "event_time",
            "created_time",
            "min_importance",
            "metadata_equals",
            "ids",
        ],
    )?;
    let mut f = MemoryFilter::new();
    if let Some(types) = m.opt_enums("memory_types", MemoryType::from_str_name)? {
        f = f.with_memory_types(types);
    }
    if let Some(tags) = m.opt_strings("tags_any")? {
        f = f.with_tags_any(tags);
    }
    if let Some(tags) = m.opt_strings("tags_all")? {
        f = f.with_tags_all(tags);
    }
    if let Some(session) = m.opt_string("session_id")? {
        f = f.with_session_id(session);
    }
    if let Some(range) = m.get("event_time") {
        let (start, end) = time_range(range)?;
        f = f.with_event_between(start, end);
    }
    if let Some(range) = m.get("created_time") {
        let (start, end) = time_range(range)?;
        f = f.with_created_between(start, end);
    }
    if let Some(min) = m.opt_f32("min_importance")? {
        f = f.with_min_importance(min);
    }
    if let Some(Json::Object(pairs)) = m.get("metadata_equals") {
        for (key, value) in pairs {
            f = f.with_metadata_equals(key.clone(), pb_value(value));
        }
    } else if let Some(other) = m.get("metadata_equals") {
        return m.bad("metadata_equals", "a JSON object", other);
    }
    if let Some(ids) = m.opt_strings("ids")? {
        f = f.with_ids(ids);
    }
    Ok(f)
}

fn time_range(value: &Json) -> Shim<(Option<SystemTime>, Option<SystemTime>)> {
    let m = Msg::new("TimeRange", value, &["start_time", "end_time"])?;
    Ok((m.opt_time("start_time")?, m.opt_time("end_time")?))
}

fn store_request(value: &Json) -> Shim<StoreMemoryRequest> {
    let m = Msg::new(
        "StoreMemoryRequest",
        value,
        &[
            "agent_id",
            "content",
            "memory_type",
            "importance",
            "tags",
            "metadata",
            "session_id",
            "event_time",
            "ttl_seconds",
            "expires_at",
            "id",
        ],
    )?;
    let mut r = StoreMemoryRequest::new(m.string("agent_id")?, m.string("content")?);
    if let Some(id) = m.opt_string("id")? {
        r = r.with_id(id);
    }
    if let Some(t) = m.opt_enum("memory_type", MemoryType::from_str_name)? {
        r = r.with_memory_type(t);
    }
    if let Some(importance) = m.opt_f32("importance")? {
        r = r.with_importance(importance);
    }
    if let Some(tags) = m.opt_strings("tags")? {
        r = r.with_tags(tags);
    }
    if let Some(metadata) = m.opt_struct("metadata")? {
        r = r.with_metadata_object(metadata);
    }
    if let Some(session) = m.opt_string("session_id")? {
        r = r.with_session_id(session);
    }
    if let Some(time) = m.opt_time("event_time")? {
        r = r.with_event_time(time);
    }
    if let Some(ttl) = m.opt_ttl("ttl_seconds")? {
        r = r.with_ttl(ttl);
    }
    if let Some(time) = m.opt_time("expires_at")? {
        r = r.with_expires_at(time);
    }
    Ok(r)
}

fn recall_request(value: &Json) -> Shim<RecallRequest> {
    let m = Msg::new(
        "RecallRequest",
        value,
        &[
            "agent_id",
            "query",
            "top_k",
            "filter",
            "mode",
            "explain",
            "include_associated",
            "min_score",
        ],
    )?;
    let mut r = RecallRequest::new(m.string("agent_id")?, m.string("query")?);
    if let Some(top_k) = m.opt_i32("top_k")? {
        r = r.with_top_k(top_k);
    }
    if let Some(f) = m.get("filter") {
        r = r.with_filter(filter(f)?);
    }
    if let Some(mode) = m.opt_enum("mode", RecallMode::from_str_name)? {
        r = r.with_mode(mode);
    }
    if m.get("explain").is_some() {
        r = r.with_explain(m.bool("explain")?);
    }
    if m.get("include_associated").is_some() {
        r = r.with_include_associated(m.bool("include_associated")?);
    }
    if let Some(min) = m.opt_f32("min_score")? {
        r = r.with_min_score(min);
    }
    Ok(r)
}

/// The fields of a `Memory` an update can change, in the order a caller would set them.
const UPDATABLE: [&str; 8] = [
    "content",
    "memory_type",
    "importance",
    "tags",
    "metadata",
    "session_id",
    "event_time",
    "expires_at",
];

fn update_request(value: &Json) -> Shim<UpdateMemoryRequest> {
    let m = Msg::new(
        "UpdateMemoryRequest",
        value,
        &["memory", "update_mask", "agent_id", "ttl_seconds"],
    )?;
    let mut known = vec!["id"];
    known.extend(UPDATABLE);
    let empty = Json::Null;
    let memory = Msg::new("Memory", m.get("memory").unwrap_or(&empty), &known)?;
    // proto3 JSON writes a FieldMask as one string of comma-separated lowerCamelCase paths.
    let paths: Option<Vec<String>> = match m.get("update_mask") {
        None => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.split(',').map(|p| snake_case(p.trim())).collect()),
        Some(Json::Object(o)) => match o.get("paths") {
            Some(Json::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(Json::as_str)
                    .map(snake_case)
                    .collect(),
            ),
            _ => None,
        },
        Some(other) => return m.bad("update_mask", "a FieldMask string", other),
    };
    let mut r = UpdateMemoryRequest::new(memory.string("id")?);
    match paths {
        // Only the masked fields change; a masked field absent from `memory` is cleared.
        Some(paths) => {
            for path in &paths {
                if !UPDATABLE.contains(&path.as_str()) {
                    return refuse(format!(
                        "update_mask names {path:?}, which UpdateMemoryRequest has no setter for"
                    ));
                }
                r = set_update_field(r, &memory, path, true)?;
            }
        }
        // Without a mask, every field set in `memory` changes.
        None => {
            for path in UPDATABLE {
                if memory.get(path).is_some() {
                    r = set_update_field(r, &memory, path, false)?;
                }
            }
        }
    }
    if let Some(agent) = m.opt_string("agent_id")? {
        r = r.with_agent_id(agent);
    }
    if let Some(ttl) = m.opt_ttl("ttl_seconds")? {
        r = r.with_ttl(ttl);
    }
    Ok(r)
}

fn set_update_field(
    r: UpdateMemoryRequest,
    memory: &Msg<'_>,
    path: &str,
    masked: bool,
) -> Shim<UpdateMemoryRequest> {
    Ok(match path {
        "content" => r.with_content(memory.string("content")?),
        "memory_type" => r.with_memory_type(
            memory
                .opt_enum("memory_type", MemoryType::from_str_name)?
                .unwrap_or(MemoryType::Unspecified),
        ),
        "importance" => r.with_importance(memory.opt_f32("importance")?.unwrap_or_default()),
        "tags" => r.with_tags(memory.opt_strings("tags")?.unwrap_or_default()),
        "metadata" => r.with_metadata(memory.opt_struct("metadata")?.unwrap_or_default()),
        "session_id" => r.with_session_id(memory.string("session_id")?),
        "event_time" | "expires_at" => {
            let Some(time) = memory.opt_time(path)? else {
                debug_assert!(masked);
                return refuse(format!(
                    "clearing {path} (masked, no value): UpdateMemoryRequest::with_{path} takes a SystemTime"
                ));
            };
            if path == "event_time" {
                r.with_event_time(time)
            } else {
                r.with_expires_at(time)
            }
        }
        other => return refuse(format!("UpdateMemoryRequest has no setter for {other}")),
    })
}

fn list_request(value: &Json) -> Shim<ListMemoriesRequest> {
    let m = Msg::new(
        "ListMemoriesRequest",
        value,
        &["agent_id", "page_size", "page_token", "filter", "order_by"],
    )?;
    let mut r = ListMemoriesRequest::new(m.string("agent_id")?);
    if let Some(size) = m.opt_i32("page_size")? {
        r = r.with_page_size(size);
    }
    if let Some(token) = m.opt_string("page_token")? {
        r = r.with_page_token(token);
    }
    if let Some(f) = m.get("filter") {
        r = r.with_filter(filter(f)?);
    }
    if let Some(order) = m.opt_string("order_by")? {
        r = r.with_order_by(order);
    }
    Ok(r)
}

/// A whole memory as exported, for an import (the one request that carries every field).
fn memory(value: &Json) -> Shim<Memory> {
    let m = Msg::new(
        "Memory",
        value,
        &[
            "id",
            "agent_id",
            "content",
            "memory_type",
            "importance",
            "tags",
            "metadata",
            "session_id",
            "event_time",
            "created_at",
            "updated_at",
            "expires_at",
            "access_count",
            "last_accessed_at",
            "version",
            "embedding_model",
        ],
    )?;
    let mut memory = Memory {
        id: m.string("id")?,
        agent_id: m.string("agent_id")?,
        content: m.string("content")?,
        importance: m.opt_f32("importance")?.unwrap_or_default(),
        tags: m.opt_strings("tags")?.unwrap_or_default(),
        metadata: m.opt_struct("metadata")?,
        session_id: m.string("session_id")?,
        event_time: m.opt_timestamp("event_time")?,
        created_at: m.opt_timestamp("created_at")?,
        updated_at: m.opt_timestamp("updated_at")?,
        expires_at: m.opt_timestamp("expires_at")?,
        access_count: m.opt_i32("access_count")?.unwrap_or_default(),
        last_accessed_at: m.opt_timestamp("last_accessed_at")?,
        version: m.opt_i32("version")?.unwrap_or_default(),
        embedding_model: m.string("embedding_model")?,
        ..Default::default()
    };
    if let Some(t) = m.opt_enum("memory_type", MemoryType::from_str_name)? {
        memory.set_memory_type(t);
    }
    Ok(memory)
}

fn import_request(value: &Json) -> Shim<ImportMemoriesRequest> {
    let m = Msg::new("ImportMemoriesRequest", value, &["memory", "agent_id"])?;
    let empty = Json::Null;
    let mut r = ImportMemoriesRequest::new(memory(m.get("memory").unwrap_or(&empty))?);
    if let Some(agent) = m.opt_string("agent_id")? {
        r = r.with_agent_id(agent);
    }
    Ok(r)
}

fn list_of<'a>(value: &'a Json, what: &str) -> Shim<&'a [Json]> {
    match value {
        Json::Array(items) => Ok(items),
        Json::Null => Ok(&[]),
        other => refuse(format!("{what} must be a list, got {other}")),
    }
}

// ------------------------------------------------------------------------------------------------
// Writing proto3 JSON responses
// ------------------------------------------------------------------------------------------------

/// A float field: the shortest decimal that reads back as the same f32 (0.95, not 0.949999988).
fn f32_json(x: f32) -> Json {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or_else(|| Json::String(x.to_string()), Json::Number)
}

fn time_json(t: &Option<Timestamp>) -> Json {
    t.as_ref()
        .map_or(Json::Null, |t| Json::String(t.to_string()))
}

fn enum_json<T: TryFrom<i32>>(value: i32, name: fn(&T) -> &'static str) -> Json {
    T::try_from(value).map_or_else(|_| json!(value), |t| json!(name(&t)))
}

fn value_json(value: &prost_types::Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::ListValue(list)) => Json::Array(list.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => struct_json(s),
    }
}

fn struct_json(s: &Struct) -> Json {
    Json::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

/// Drops the unset (null) fields, as proto3 JSON omits unset messages.
fn object(fields: Vec<(&str, Json)>) -> Json {
    Json::Object(
        fields
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn memory_json(m: &Memory) -> Json {
    object(vec![
        ("id", json!(m.id)),
        ("agent_id", json!(m.agent_id)),
        ("content", json!(m.content)),
        (
            "memory_type",
            enum_json(m.memory_type, MemoryType::as_str_name),
        ),
        ("importance", f32_json(m.importance)),
        ("tags", json!(m.tags)),
        (
            "metadata",
            m.metadata.as_ref().map_or(Json::Null, struct_json),
        ),
        ("session_id", json!(m.session_id)),
        ("event_time", time_json(&m.event_time)),
        ("created_at", time_json(&m.created_at)),
        ("updated_at", time_json(&m.updated_at)),
        ("expires_at", time_json(&m.expires_at)),
        ("access_count", json!(m.access_count)),
        ("last_accessed_at", time_json(&m.last_accessed_at)),
        ("version", json!(m.version)),
        ("embedding_model", json!(m.embedding_model)),
    ])
}

fn explanation_json(e: &ScoreExplanation) -> Json {
    object(vec![
        ("vector_score", f32_json(e.vector_score)),
        ("keyword_score", f32_json(e.keyword_score)),
        ("vector_rank", json!(e.vector_rank)),
        ("keyword_rank", json!(e.keyword_rank)),
        ("fused_score", f32_json(e.fused_score)),
        ("importance_boost", f32_json(e.importance_boost)),
        ("recency_boost", f32_json(e.recency_boost)),
        ("context_boost", f32_json(e.context_boost)),
    ])
}

fn recalled_json(m: &RecalledMemory) -> Json {
    object(vec![
        ("id", json!(m.id)),
        ("agent_id", json!(m.agent_id)),
        ("content", json!(m.content)),
        (
            "memory_type",
            enum_json(m.memory_type, MemoryType::as_str_name),
        ),
        ("importance", f32_json(m.importance)),
        ("tags", json!(m.tags)),
        (
            "metadata",
            m.metadata.as_ref().map_or(Json::Null, struct_json),
        ),
        ("session_id", json!(m.session_id)),
        ("event_time", time_json(&m.event_time)),
        ("created_at", time_json(&m.created_at)),
        ("updated_at", time_json(&m.updated_at)),
        ("expires_at", time_json(&m.expires_at)),
        ("access_count", json!(m.access_count)),
        ("last_accessed_at", time_json(&m.last_accessed_at)),
        ("version", json!(m.version)),
        ("embedding_model", json!(m.embedding_model)),
        ("score", f32_json(m.score)),
        ("vector_score", f32_json(m.vector_score)),
        ("keyword_score", f32_json(m.keyword_score)),
        (
            "explanation",
            m.explanation.as_ref().map_or(Json::Null, explanation_json),
        ),
        ("associated", json!(m.associated)),
    ])
}

fn recall_json(r: &RecallResponse) -> Json {
    object(vec![
        (
            "memories",
            Json::Array(r.memories.iter().map(recalled_json).collect()),
        ),
        ("total_found", json!(r.total_found)),
        ("took_ms", f32_json(r.took_ms)),
    ])
}

fn memories_json(memories: &[Memory]) -> Json {
    Json::Array(memories.iter().map(memory_json).collect())
}

fn link_json(l: &MemoryLink) -> Json {
    object(vec![
        ("agent_id", json!(l.agent_id)),
        ("source_id", json!(l.source_id)),
        ("target_id", json!(l.target_id)),
        ("relation", json!(l.relation)),
        ("weight", f32_json(l.weight)),
        ("created_at", time_json(&l.created_at)),
    ])
}

fn agent_json(a: &Agent) -> Json {
    object(vec![
        ("agent_id", json!(a.agent_id)),
        ("memory_count", json!(a.memory_count)),
        ("bytes_stored", json!(a.bytes_stored.to_string())),
        ("link_count", json!(a.link_count)),
        ("created_at", time_json(&a.created_at)),
        ("last_activity_at", time_json(&a.last_activity_at)),
        ("memory_type_counts", json!(a.memory_type_counts)),
    ])
}

fn api_key_json(k: &ApiKey) -> Json {
    object(vec![
        ("id", json!(k.id)),
        ("name", json!(k.name)),
        ("prefix", json!(k.prefix)),
        ("role", enum_json(k.role, ApiKeyRole::as_str_name)),
        ("agent_ids", json!(k.agent_ids)),
        ("agent_id_prefix", json!(k.agent_id_prefix)),
        ("created_at", time_json(&k.created_at)),
        ("expires_at", time_json(&k.expires_at)),
        ("revoked_at", time_json(&k.revoked_at)),
        ("last_used_at", time_json(&k.last_used_at)),
    ])
}

fn limits_json(l: &ServerLimits) -> Json {
    json!({
        "max_request_bytes": l.max_request_bytes,
        "max_content_bytes": l.max_content_bytes,
        "max_metadata_bytes": l.max_metadata_bytes,
        "max_tags": l.max_tags,
        "max_batch_size": l.max_batch_size,
        "max_top_k": l.max_top_k,
        "max_page_size": l.max_page_size,
        "max_graph_depth": l.max_graph_depth,
        "max_concurrent_streams": l.max_concurrent_streams,
    })
}

fn node_json(n: &ClusterNode) -> Json {
    json!({"node_id": n.node_id, "address": n.address, "healthy": n.healthy, "role": n.role})
}

/// Standard base64 with padding, as proto3 JSON writes `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A vector as the wire carries it: packed little-endian f32 (the inverse of `decode_vector`).
fn vector_json(vector: &[f32]) -> Json {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    json!({"vector": base64(&bytes)})
}

// ------------------------------------------------------------------------------------------------
// Calls
// ------------------------------------------------------------------------------------------------

async fn call(client: &Client, rpc: &str, req: &Json) -> Shim<Reply> {
    let empty = Json::Null;
    let one = |value: Json| Ok(Reply::One(value));
    match rpc {
        "MemoryService.StoreMemory" => {
            let stored = client.store(store_request(req)?).await?;
            one(json!({"memory": memory_json(&stored.memory), "created": stored.created}))
        }
        "MemoryService.BatchStoreMemories" => {
            let m = Msg::new("BatchStoreMemoriesRequest", req, &["requests"])?;
            let requests = list_of(m.get("requests").unwrap_or(&empty), "requests")?
                .iter()
                .map(store_request)
                .collect::<Shim<Vec<_>>>()?;
            let batch = client.batch_store(requests).await?;
            one(
                json!({"memories": memories_json(&batch.memories), "created_count": batch.created_count}),
            )
        }
        "MemoryService.GetMemory" => {
            let m = Msg::new("GetMemoryRequest", req, &["id", "agent_id"])?;
            let mut r = GetMemoryRequest::new(m.string("id")?);
            if let Some(agent) = m.opt_string("agent_id")? {
                r = r.with_agent_id(agent);
            }
            let memory = client.get(r).await?;
            one(json!({"memory": memory_json(&memory)}))
        }
        "MemoryService.UpdateMemory" => {
            let memory = client.update(update_request(req)?).await?;
            one(json!({"memory": memory_json(&memory)}))
        }
        "MemoryService.DeleteMemory" => {
            let m = Msg::new("DeleteMemoryRequest", req, &["id", "agent_id"])?;
            let id = m.string("id")?;
            let mut r = DeleteMemoryRequest::new(id.clone());
            if let Some(agent) = m.opt_string("agent_id")? {
                r = r.with_agent_id(agent);
            }
            // `Client::delete` returns `()`: the deleted id is the one asked for.
            client.delete(r).await?;
            one(json!({"id": id}))
        }
        "MemoryService.ListMemories" => {
            let page = client.list(list_request(req)?).await?;
            one(json!({
                "memories": memories_json(&page.memories),
                "next_page_token": page.next_page_token,
                "total_size": page.total_size,
            }))
        }
        "MemoryService.Recall" => {
            let found = client.recall(recall_request(req)?).await?;
            one(recall_json(&found))
        }
        "MemoryService.BatchRecall" => {
            let m = Msg::new("BatchRecallRequest", req, &["requests"])?;
            let requests = list_of(m.get("requests").unwrap_or(&empty), "requests")?
                .iter()
                .map(recall_request)
                .collect::<Shim<Vec<_>>>()?;
            let answers = client.batch_recall(requests).await?;
            one(json!({"responses": answers.iter().map(recall_json).collect::<Vec<_>>()}))
        }
        "MemoryService.ForgetMemories" => {
            let m = Msg::new(
                "ForgetMemoriesRequest",
                req,
                &["agent_id", "filter", "dry_run"],
            )?;
            let Some(f) = m.get("filter") else {
                return refuse(
                    "ForgetMemoriesRequest::new takes a MemoryFilter: there is no forget without one",
                );
            };
            let r = ForgetMemoriesRequest::new(m.string("agent_id")?, filter(f)?)
                .with_dry_run(m.bool("dry_run")?);
            let done = client.forget(r).await?;
            one(json!({
                "matched_count": done.matched_count,
                "deleted_count": done.deleted_count,
                "ids": done.ids,
                "dry_run": done.dry_run,
            }))
        }
        "MemoryService.GetMemoryHistory" => {
            let m = Msg::new("GetMemoryHistoryRequest", req, &["id", "agent_id"])?;
            let mut r = GetMemoryHistoryRequest::new(m.string("id")?);
            if let Some(agent) = m.opt_string("agent_id")? {
                r = r.with_agent_id(agent);
            }
            let versions = client.history(r).await?;
            one(json!({"versions": memories_json(&versions)}))
        }
        "MemoryService.LinkMemories" => {
            let m = Msg::new(
                "LinkMemoriesRequest",
                req,
                &["agent_id", "source_id", "target_id", "relation", "weight"],
            )?;
            let mut r = LinkMemoriesRequest::new(
                m.string("agent_id")?,
                m.string("source_id")?,
                m.string("target_id")?,
            );
            if let Some(relation) = m.opt_string("relation")? {
                r = r.with_relation(relation);
            }
            if let Some(weight) = m.opt_f32("weight")? {
                r = r.with_weight(weight);
            }
            let link = client.link(r).await?;
            one(json!({"link": link_json(&link)}))
        }
        "MemoryService.UnlinkMemories" => {
            let m = Msg::new(
                "UnlinkMemoriesRequest",
                req,
                &["agent_id", "source_id", "target_id", "relation"],
            )?;
            let mut r = UnlinkMemoriesRequest::new(
                m.string("agent_id")?,
                m.string("source_id")?,
                m.string("target_id")?,
            );
            if let Some(relation) = m.opt_string("relation")? {
                r = r.with_relation(relation);
            }
            let removed = client.unlink(r).await?;
            one(json!({"removed_count": removed}))
        }
        "MemoryService.GetMemoryGraph" => {
            let m = Msg::new(
                "GetMemoryGraphRequest",
                req,
                &["agent_id", "id", "depth", "relations", "max_nodes"],
            )?;
            let mut r = GetMemoryGraphRequest::new(m.string("agent_id")?, m.string("id")?);
            if let Some(depth) = m.opt_i32("depth")? {
                r = r.with_depth(depth);
            }
            if let Some(relations) = m.opt_strings("relations")? {
                r = r.with_relations(relations);
            }
            if let Some(max) = m.opt_i32("max_nodes")? {
                r = r.with_max_nodes(max);
            }
            let graph = client.graph(r).await?;
            one(json!({
                "memories": memories_json(&graph.memories),
                "links": graph.links.iter().map(link_json).collect::<Vec<_>>(),
            }))
        }
        "MemoryService.ExportMemories" => {
            let m = Msg::new("ExportMemoriesRequest", req, &["agent_id", "filter"])?;
            let mut r = ExportMemoriesRequest::new(m.string("agent_id")?);
            if let Some(f) = m.get("filter") {
                r = r.with_filter(filter(f)?);
            }
            let mut stream = client.export(r).await?;
            let mut messages = Vec::new();
            while let Some(memory) = stream.next().await {
                messages.push(json!({"memory": memory_json(&memory?)}));
            }
            Ok(Reply::Many(messages))
        }
        "MemoryService.ImportMemories" => {
            let requests = list_of(req, "an ImportMemories request stream")?
                .iter()
                .map(import_request)
                .collect::<Shim<Vec<_>>>()?;
            let done = client.import(requests).await?;
            one(json!({"imported_count": done.imported_count, "skipped_count": done.skipped_count}))
        }
        "AgentService.ListAgents" => {
            let m = Msg::new("ListAgentsRequest", req, &["page_size", "page_token"])?;
            let mut r = ListAgentsRequest::new();
            if let Some(size) = m.opt_i32("page_size")? {
                r = r.with_page_size(size);
            }
            if let Some(token) = m.opt_string("page_token")? {
                r = r.with_page_token(token);
            }
            let page = client.list_agents(r).await?;
            one(json!({
                "agents": page.agents.iter().map(agent_json).collect::<Vec<_>>(),
                "next_page_token": page.next_page_token,
                "total_size": page.total_size,
            }))
        }
        "AgentService.GetAgent" => {
            let m = Msg::new("GetAgentRequest", req, &["agent_id"])?;
            let agent = client.get_agent(m.string("agent_id")?).await?;
            one(json!({"agent": agent_json(&agent)}))
        }
        "AgentService.DeleteAgent" => {
            let m = Msg::new("DeleteAgentRequest", req, &["agent_id"])?;
            let erased = client.delete_agent(m.string("agent_id")?).await?;
            one(json!({"deleted_memory_count": erased}))
        }
        "AdminService.Health" => {
            Msg::new("HealthRequest", req, &[])?;
            let health = client.health().await?;
            one(json!({"status": health.status, "version": health.version}))
        }
        "AdminService.GetServerInfo" => {
            Msg::new("GetServerInfoRequest", req, &[])?;
            let info = client.server_info().await?;
            one(object(vec![
                ("version", json!(info.version)),
                ("api_version", json!(info.api_version)),
                ("embedding_model", json!(info.embedding_model)),
                ("embedding_dimensions", json!(info.embedding_dimensions)),
                (
                    "limits",
                    info.limits.as_ref().map_or(Json::Null, limits_json),
                ),
                ("auth_required", json!(info.auth_required)),
            ]))
        }
        "AdminService.GetStats" => {
            Msg::new("GetStatsRequest", req, &[])?;
            let s = client.stats().await?;
            one(json!({
                "agent_count": s.agent_count,
                "memory_count": s.memory_count.to_string(),
                "link_count": s.link_count.to_string(),
                "disk_bytes": s.disk_bytes.to_string(),
                "exact_vector_count": s.exact_vector_count.to_string(),
                "indexed_vector_count": s.indexed_vector_count.to_string(),
                "pending_index_builds": s.pending_index_builds,
                "uptime_seconds": s.uptime_seconds,
                "request_count": s.request_count.to_string(),
            }))
        }
        "AdminService.CreateApiKey" => {
            let m = Msg::new(
                "CreateApiKeyRequest",
                req,
                &[
                    "name",
                    "role",
                    "agent_ids",
                    "agent_id_prefix",
                    "ttl_seconds",
                ],
            )?;
            let role = m
                .opt_enum("role", ApiKeyRole::from_str_name)?
                .unwrap_or(ApiKeyRole::Unspecified);
            let mut r = CreateApiKeyRequest::new(m.string("name")?, role);
            if let Some(ids) = m.opt_strings("agent_ids")? {
                r = r.with_agent_ids(ids);
            }
            if let Some(prefix) = m.opt_string("agent_id_prefix")? {
                r = r.with_agent_id_prefix(prefix);
            }
            if let Some(ttl) = m.opt_ttl("ttl_seconds")? {
                r = r.with_ttl(ttl);
            }
            let created = client.create_api_key(r).await?;
            one(json!({"api_key": api_key_json(&created.api_key), "key": created.key}))
        }
        "AdminService.ListApiKeys" => {
            let m = Msg::new("ListApiKeysRequest", req, &["include_revoked"])?;
            let keys = client.list_api_keys(m.bool("include_revoked")?).await?;
            one(json!({"api_keys": keys.iter().map(api_key_json).collect::<Vec<_>>()}))
        }
        "AdminService.RevokeApiKey" => {
            let m = Msg::new("RevokeApiKeyRequest", req, &["id"])?;
            let key = client.revoke_api_key(m.string("id")?).await?;
            one(json!({"api_key": api_key_json(&key)}))
        }
        "AdminService.GetClusterStatus" => {
            Msg::new("GetClusterStatusRequest", req, &[])?;
            let c = client.cluster_status().await?;
            one(json!({
                "node_count": c.node_count,
                "healthy_node_count": c.healthy_node_count,
                "replication_factor": c.replication_factor,
                "nodes": c.nodes.iter().map(node_json).collect::<Vec<_>>(),
            }))
        }
        "EmbeddingService.Embed" => {
            let m = Msg::new("EmbedRequest", req, &["texts", "input_type"])?;
            let mut r = EmbedRequest::new(m.opt_strings("texts")?.unwrap_or_default());
            if let Some(t) = m.opt_enum("input_type", EmbeddingInputType::from_str_name)? {
                r = r.with_input_type(t);
            }
            let out = client.embed(r).await?;
            one(json!({
                "embeddings": out.vectors.iter().map(|v| vector_json(v)).collect::<Vec<_>>(),
                "model": out.model,
                "dimensions": out.dimensions,
            }))
        }
        other => refuse(format!("unknown rpc {other}")),
    }
}

/// The clients, one per (url, api_key), each with retries off.
#[derive(Default)]
struct Clients(HashMap<(String, Option<String>), Client>);

impl Clients {
    fn get(&mut self, url: &str, api_key: Option<&str>) -> Shim<Client> {
        let key = (url.to_owned(), api_key.map(str::to_owned));
        if let Some(client) = self.0.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = Client::builder()
            .endpoint(url)
            .timeout(DEFAULT_TIMEOUT)
            .retries(0);
        if let Some(api_key) = api_key {
            builder = builder.api_key(api_key);
        }
        let client = builder.build()?;
        self.0.insert(key, client.clone());
        Ok(client)
    }
}

/// The RPCs with a stream on either side.
const STREAMING: [&str; 2] = [
    "MemoryService.ExportMemories",
    "MemoryService.ImportMemories",
];

async fn handle(clients: &mut Clients, msg: &Json) -> Shim<Reply> {
    let transport = msg["transport"].as_str().unwrap_or("grpc");
    if transport != "grpc" {
        return refuse(format!("the Rust SDK speaks gRPC only, not {transport}"));
    }
    let url = msg["url"].as_str().unwrap_or_default();
    let api_key = msg["api_key"].as_str().filter(|k| !k.is_empty());
    let rpc = msg["rpc"].as_str().unwrap_or_default();
    let timeout = msg["timeout_ms"]
        .as_u64()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    let client = clients.get(url, api_key)?;
    match timeout {
        // Unary calls keep to the client's deadline, which the SDK also sends to the server.
        Some(timeout) if !STREAMING.contains(&rpc) => {
            call(&client.with_timeout(timeout), rpc, &msg["request"]).await
        }
        None => call(&client, rpc, &msg["request"]).await,
        // The SDK leaves streams without a deadline: bound them as a user would.
        Some(timeout) => {
            match tokio::time::timeout(timeout, call(&client, rpc, &msg["request"])).await {
                Ok(result) => result,
                Err(_) => Err(Failure::Sdk(engram_client::Error::Status {
                    code: engram_client::Code::DeadlineExceeded,
                    message: format!("no answer within {timeout:?}"),
                    details: Vec::new(),
                    from_server: false,
                })),
            }
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut clients = Clients::default();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin is readable");
        if line.trim().is_empty() {
            continue;
        }
        let msg: Json = serde_json::from_str(&line).expect("each line is one JSON object");
        let mut reply = Map::new();
        reply.insert("id".into(), msg["id"].clone());
        match runtime.block_on(handle(&mut clients, &msg)) {
            Ok(Reply::One(response)) => reply.insert("response".into(), response),
            Ok(Reply::Many(responses)) => reply.insert("responses".into(), Json::Array(responses)),
            Err(failure) => reply.insert("error".into(), failure.to_json()),
        };
        writeln!(stdout, "{}", Json::Object(reply)).expect("stdout is writable");
        stdout.flush().expect("stdout is writable");
    }
}

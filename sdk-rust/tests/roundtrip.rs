//! Round-trip encoding of every generated message.
//!
//! For each message, the test synthesises protobuf wire bytes that set *every* field (read from the
//! compiled descriptor set `tests/data/descriptor.binpb`, written by `make generate`): nested
//! messages, repeated fields (two values, packed where proto3 packs), maps, enums and proto3
//! `optional` fields. Decoding them into the generated type and encoding again must give the same
//! bytes back: a field the generated code did not know would be dropped, and a type mismatch would
//! fail to decode. A second check fails when a message exists in the proto but not in this list.
//! With the `serde` feature, each message also goes through its proto3 JSON and back.

use std::collections::{BTreeSet, HashMap};

use engram_client::pb::engram::v1 as ev1;
use engram_client::pb::google::rpc;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

struct Descriptors {
    messages: HashMap<String, DescriptorProto>,
}

impl Descriptors {
    fn load() -> Self {
        let bytes = include_bytes!("data/descriptor.binpb");
        let fds = FileDescriptorSet::decode(&bytes[..]).expect("descriptor set decodes");
        let mut messages = HashMap::new();
        for file in fds.file {
            let package = file.package.clone().unwrap_or_default();
            for message in file.message_type {
                add(&mut messages, &format!(".{package}"), message);
            }
        }
        Self { messages }
    }

    /// Wire bytes of message `name` (".engram.v1.Memory") with every field set.
    fn synthesise(&self, name: &str, depth: usize) -> Vec<u8> {
        let desc = &self.messages[name];
        let mut out = Vec::new();
        // Recursive types (google.protobuf.Value) stop nesting here; scalars are still set.
        let deep = depth > 3;
        let mut fields: Vec<_> = desc.field.iter().collect();
        fields.sort_by_key(|f| f.number());
        let mut oneofs_done = BTreeSet::new();
        for field in fields {
            if deep && field.r#type() == Type::Message {
                continue;
            }
            // Real oneofs: set only the first member; proto3 `optional` fields are set.
            if let Some(index) = field.oneof_index
                && !field.proto3_optional()
                && !oneofs_done.insert(index)
            {
                continue;
            }
            let number = field.number() as u64;
            let repeated = field.label() == Label::Repeated;
            match field.r#type() {
                Type::Message | Type::Group => {
                    let type_name = field.type_name();
                    let is_map = self.messages[type_name]
                        .options
                        .as_ref()
                        .is_some_and(|o| o.map_entry());
                    // One entry per map (hash maps re-encode in arbitrary order), two otherwise.
                    let count = if repeated && !is_map { 2 } else { 1 };
                    for _ in 0..count {
                        let nested = self.synthesise(type_name, depth + 1);
                        key(&mut out, number, 2);
                        varint(&mut out, nested.len() as u64);
                        out.extend(nested);
                    }
                }
                Type::String | Type::Bytes => {
                    for i in 0..if repeated { 2 } else { 1 } {
                        let value = format!("v{number}.{i}");
                        key(&mut out, number, 2);
                        varint(&mut out, value.len() as u64);
                        out.extend(value.as_bytes());
                    }
                }
                scalar => {
                    let mut value = Vec::new();
                    let wire = scalar_value(&mut value, scalar, number);
                    if repeated {
                        // proto3 packs repeated scalars.
                        let packed = [value.clone(), value].concat();
                        key(&mut out, number, 2);
                        varint(&mut out, packed.len() as u64);
                        out.extend(packed);
                    } else {
                        key(&mut out, number, wire);
                        out.extend(value);
                    }
                }
            }
        }
        out
    }
}

fn add(messages: &mut HashMap<String, DescriptorProto>, scope: &str, message: DescriptorProto) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        add(messages, &name, nested.clone());
    }
    messages.insert(name, message);
}

fn key(out: &mut Vec<u8>, number: u64, wire_type: u64) {
    varint(out, (number << 3) | wire_type);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a non-default value of a scalar type; returns its wire type.
fn scalar_value(out: &mut Vec<u8>, ty: Type, number: u64) -> u64 {
    match ty {
        Type::Double | Type::Fixed64 | Type::Sfixed64 => {
            out.extend(match ty {
                Type::Double => (number as f64 + 0.25).to_le_bytes(),
                _ => (number + 7).to_le_bytes(),
            });
            1
        }
        Type::Float | Type::Fixed32 | Type::Sfixed32 => {
            out.extend(match ty {
                Type::Float => (number as f32 + 0.5).to_le_bytes(),
                _ => (number as u32 + 7).to_le_bytes(),
            });
            5
        }
        Type::Bool | Type::Enum => {
            varint(out, 1); // 1 is a defined value of every enum here
            0
        }
        Type::Sint32 | Type::Sint64 => {
            varint(out, number * 2 + 1); // zigzag of a negative number
            0
        }
        _ => {
            varint(out, number + 1000);
            0
        }
    }
}

fn check<M: Message + Default + PartialEq + std::fmt::Debug>(d: &Descriptors, name: &str) {
    let wire = d.synthesise(name, 0);
    let decoded = M::decode(wire.as_slice()).unwrap_or_else(|e| panic!("{name}: decode: {e}"));
    if !d.messages[name].field.is_empty() {
        assert_ne!(decoded, M::default(), "{name}: nothing decoded");
    }
    let encoded = decoded.encode_to_vec();
    assert_eq!(
        encoded, wire,
        "{name}: re-encoding differs (a field was lost or changed)"
    );
    let again = M::decode(encoded.as_slice()).expect("decodes again");
    assert_eq!(again, decoded, "{name}");
    assert_eq!(decoded.encoded_len(), wire.len(), "{name}: encoded_len");
}

/// Proto3 JSON of the synthesised message, read back: the same message, written again the same.
#[cfg(feature = "serde")]
fn check_json<M>(d: &Descriptors, name: &str)
where
    M: Message
        + Default
        + PartialEq
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let decoded = M::decode(d.synthesise(name, 0).as_slice()).expect("decodes");
    let json = serde_json::to_string(&decoded).unwrap_or_else(|e| panic!("{name}: to JSON: {e}"));
    let back: M = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
    let again = serde_json::to_string(&back).expect("serialises again");
    assert_eq!(again, json, "{name}: JSON changed on a round trip");
    // pbjson-types reads a JSON `null` in a `google.protobuf.Value` as no value at all
    // (influxdata/pbjson#100), so messages holding a `Value` only compare as JSON.
    if !d.reaches(name, ".google.protobuf.Value", &mut BTreeSet::new()) {
        assert_eq!(back, decoded, "{name}: {json}");
    }
}

impl Descriptors {
    /// Whether message `from` contains a `target` field, directly or in a nested message.
    #[cfg(feature = "serde")]
    fn reaches(&self, from: &str, target: &str, seen: &mut BTreeSet<String>) -> bool {
        from == target
            || (seen.insert(from.to_owned())
                && self.messages[from].field.iter().any(|f| {
                    f.r#type() == Type::Message && self.reaches(f.type_name(), target, seen)
                }))
    }
}

/// `check`, then (with the `serde` feature) `check_json`.
#[cfg(feature = "serde")]
fn check_with_json<M>(d: &Descriptors, name: &str)
where
    M: Message
        + Default
        + PartialEq
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    check::<M>(d, name);
    check_json::<M>(d, name);
}
#[cfg(not(feature = "serde"))]
use crate::check as check_with_json;

macro_rules! roundtrip {
    ($check:ident, $package:literal, $module:ident :: { $($ty:ident),* $(,)? }) => {{
        let d = Descriptors::load();
        let mut tested = BTreeSet::new();
        $(
            let name = concat!(".", $package, ".", stringify!($ty));
            $check::<$module::$ty>(&d, name);
            tested.insert(name.to_owned());
        )*
        tested
    }};
}

/// The top-level messages of `package` in the descriptor set.
fn messages_of(package: &str) -> BTreeSet<String> {
    let d = Descriptors::load();
    let prefix = format!(".{package}.");
    d.messages
        .keys()
        .filter(|n| n.starts_with(&prefix) && !n[prefix.len()..].contains('.'))
        .cloned()
        .collect()
}

#[test]
fn every_engram_v1_message_round_trips() {
    let tested = roundtrip!(check_with_json, "engram.v1", ev1::{
        Memory, RecalledMemory, ScoreExplanation, TimeRange, MemoryFilter, MemoryLink, Agent,
        ApiKey, ServerLimits, ClusterNode, ClusterShard, ClusterShardOwner, ClusterEngine,
        Embedding, DuplicateGroup, MemoryEvent,
        StoreMemoryRequest, StoreMemoryResponse, BatchStoreMemoriesRequest,
        BatchStoreMemoriesResponse, GetMemoryRequest, GetMemoryResponse, UpdateMemoryRequest,
        UpdateMemoryResponse, DeleteMemoryRequest, DeleteMemoryResponse, ListMemoriesRequest,
        ListMemoriesResponse, RecallRequest, RecallResponse, BatchRecallRequest,
        BatchRecallResponse, ForgetMemoriesRequest, ForgetMemoriesResponse,
        GetMemoryHistoryRequest, GetMemoryHistoryResponse, LinkMemoriesRequest,
        LinkMemoriesResponse, UnlinkMemoriesRequest, UnlinkMemoriesResponse,
        GetMemoryGraphRequest, GetMemoryGraphResponse, ExportMemoriesRequest,
        ExportMemoriesResponse, ImportMemoriesRequest, ImportMemoriesResponse,
        ConsolidateMemoriesRequest, ConsolidateMemoriesResponse, WatchMemoriesRequest,
        WatchMemoriesResponse,
        ListAgentsRequest, ListAgentsResponse, GetAgentRequest, GetAgentResponse,
        DeleteAgentRequest, DeleteAgentResponse, HealthRequest, HealthResponse,
        GetServerInfoRequest, GetServerInfoResponse, GetStatsRequest, GetStatsResponse,
        CreateApiKeyRequest, CreateApiKeyResponse, ListApiKeysRequest, ListApiKeysResponse,
        RevokeApiKeyRequest, RevokeApiKeyResponse, GetClusterStatusRequest,
        GetClusterStatusResponse, DrainClusterNodeRequest, DrainClusterNodeResponse,
        EmbedRequest, EmbedResponse,
    });
    assert_eq!(
        tested,
        messages_of("engram.v1"),
        "every engram.v1 message must be listed here"
    );
}

#[test]
fn every_google_rpc_message_round_trips() {
    let tested = roundtrip!(check, "google.rpc", rpc::{
        Status, ErrorInfo, RetryInfo, DebugInfo, QuotaFailure, PreconditionFailure, BadRequest,
        RequestInfo, ResourceInfo, Help, LocalizedMessage,
    });
    assert_eq!(
        tested,
        messages_of("google.rpc"),
        "every google.rpc message must be listed here"
    );
}

#[test]
fn synthesised_memory_sets_every_field() {
    let d = Descriptors::load();
    let memory = ev1::Memory::decode(d.synthesise(".engram.v1.Memory", 0).as_slice()).unwrap();
    assert_eq!(memory.id, "v1.0");
    assert_eq!(memory.tags, ["v6.0", "v6.1"]);
    assert_eq!(memory.memory_type(), ev1::MemoryType::Episodic);
    assert!(memory.metadata.is_some() && memory.last_accessed_at.is_some());
    assert_eq!(memory.version, 1015);
    assert_eq!(memory.embedding_model, "v16.0");
}

/// The proto3 JSON mapping of the `serde` feature: proto field names out, both spellings in,
/// enums by name, 64-bit integers as strings, timestamps in RFC 3339, unknown fields refused.
#[cfg(feature = "serde")]
#[test]
fn requests_read_and_write_proto3_json() {
    use std::time::{Duration, UNIX_EPOCH};

    let req = ev1::StoreMemoryRequest::new("a1", "tea")
        .with_memory_type(ev1::MemoryType::Semantic)
        .with_importance(0.95)
        .with_ttl(Duration::from_secs(60))
        .with_event_time(UNIX_EPOCH + Duration::from_secs(1_714_557_600))
        .with_metadata("turn", 3);
    let json = serde_json::to_value(&req).unwrap();
    assert_eq!(json["agent_id"], "a1");
    assert_eq!(json["memory_type"], "MEMORY_TYPE_SEMANTIC");
    assert_eq!(json["ttl_seconds"], "60");
    assert_eq!(json["metadata"], serde_json::json!({"turn": 3.0}));
    assert!(
        json.get("session_id").is_none(),
        "defaults are left out: {json}"
    );
    let event_time = json["event_time"].as_str().unwrap();
    assert!(
        event_time.starts_with("2024-05-01T10:00:00"),
        "{event_time}"
    );

    let camel = serde_json::json!({
        "agentId": "a1", "content": "tea", "memoryType": "MEMORY_TYPE_SEMANTIC",
        "importance": 0.95, "ttlSeconds": 60, "eventTime": "2024-05-01T10:00:00Z",
        "metadata": {"turn": 3},
    });
    let read: ev1::StoreMemoryRequest = serde_json::from_value(camel).unwrap();
    assert_eq!(read, req);

    let unknown = serde_json::json!({"agent_id": "a1", "colour": "red"});
    let err = serde_json::from_value::<ev1::StoreMemoryRequest>(unknown).unwrap_err();
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");
}

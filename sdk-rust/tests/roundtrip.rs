//! Round-trip encoding of every generated message.
//!
//! For each message, the test synthesises protobuf wire bytes that set *every* field (read from the
//! compiled descriptor set `tests/data/descriptor.binpb`, written by `make generate`): nested
//! messages, repeated fields (two values, packed where proto3 packs), maps, enums and proto3
//! `optional` fields. Decoding them into the generated type and encoding again must give the same
//! bytes back: a field the generated code did not know would be dropped, and a type mismatch would
//! fail to decode. A second check fails when a message exists in the proto but not in this list.

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

macro_rules! roundtrip {
    ($package:literal, $module:ident :: { $($ty:ident),* $(,)? }) => {{
        let d = Descriptors::load();
        let mut tested = BTreeSet::new();
        $(
            let name = concat!(".", $package, ".", stringify!($ty));
            check::<$module::$ty>(&d, name);
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
    let tested = roundtrip!("engram.v1", ev1::{
        Memory, RecalledMemory, ScoreExplanation, TimeRange, MemoryFilter, MemoryLink, Agent,
        ApiKey, ServerLimits, ClusterNode, Embedding,
        StoreMemoryRequest, StoreMemoryResponse, BatchStoreMemoriesRequest,
        BatchStoreMemoriesResponse, GetMemoryRequest, GetMemoryResponse, UpdateMemoryRequest,
        UpdateMemoryResponse, DeleteMemoryRequest, DeleteMemoryResponse, ListMemoriesRequest,
        ListMemoriesResponse, RecallRequest, RecallResponse, BatchRecallRequest,
        BatchRecallResponse, ForgetMemoriesRequest, ForgetMemoriesResponse,
        GetMemoryHistoryRequest, GetMemoryHistoryResponse, LinkMemoriesRequest,
        LinkMemoriesResponse, UnlinkMemoriesRequest, UnlinkMemoriesResponse,
        GetMemoryGraphRequest, GetMemoryGraphResponse, ExportMemoriesRequest,
        ExportMemoriesResponse, ImportMemoriesRequest, ImportMemoriesResponse,
        ListAgentsRequest, ListAgentsResponse, GetAgentRequest, GetAgentResponse,
        DeleteAgentRequest, DeleteAgentResponse, HealthRequest, HealthResponse,
        GetServerInfoRequest, GetServerInfoResponse, GetStatsRequest, GetStatsResponse,
        CreateApiKeyRequest, CreateApiKeyResponse, ListApiKeysRequest, ListApiKeysResponse,
        RevokeApiKeyRequest, RevokeApiKeyResponse, GetClusterStatusRequest,
        GetClusterStatusResponse, EmbedRequest, EmbedResponse,
    });
    assert_eq!(
        tested,
        messages_of("engram.v1"),
        "every engram.v1 message must be listed here"
    );
}

#[test]
fn every_google_rpc_message_round_trips() {
    let tested = roundtrip!("google.rpc", rpc::{
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

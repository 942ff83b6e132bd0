//! Generates the request builders (`src/pb/engram.v1.builders.rs`) from the descriptor set.
//!
//! Every message that only ever travels to the server (an RPC input, or a message reachable only
//! from inputs, such as `MemoryFilter`) gets, in one `impl` block:
//!
//! * `new(..)`, taking the required fields: those whose proto comment starts with `Required`
//!   (plus [`ALSO_REQUIRED`]), in field order;
//! * one chainable `with_<field>` setter per other field, documented with the field's comment;
//! * `with_<singular>` adders for repeated fields (`tags` → `with_tag`);
//! * `From` conversions when the only required field is a string or a message, so that
//!   `client.get("mem-1")` works.
//!
//! Setter types follow the field types: strings take `impl Into<String>`, repeated fields any
//! `IntoIterator`, enums the Rust enum, `Timestamp` a `SystemTime`, `Struct` one key and value
//! (`with_<field>_object` replaces the whole object), and an `int64 <name>_seconds` a
//! `Duration` (`with_<name>`, whole seconds rounded up). Messages in [`HAND_WRITTEN`] keep their
//! builders in `src/requests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// The package whose requests get builders.
const PACKAGE: &str = "engram.v1";

/// Builders written by hand in `src/requests.rs`: an update's setters also fill its field mask.
const HAND_WRITTEN: &[&str] = &["UpdateMemoryRequest"];

/// Required fields the proto comments do not mark as `Required`.
const ALSO_REQUIRED: &[(&str, &str)] = &[("ImportMemoriesRequest", "memory")];

struct Field<'a> {
    proto: &'a FieldDescriptorProto,
    doc: Vec<String>,
}

/// Returns the Rust source of the builders.
pub fn generate(fds: &FileDescriptorSet) -> Result<String, String> {
    let mut messages: BTreeMap<&str, (&DescriptorProto, Vec<Field<'_>>)> = BTreeMap::new();
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    for file in fds.file.iter().filter(|f| f.package() == PACKAGE) {
        for (i, message) in file.message_type.iter().enumerate() {
            let fields = (message.field.iter().enumerate())
                .map(|(j, proto)| Field {
                    proto,
                    doc: comment(file, &[4, i as i32, 2, j as i32]),
                })
                .collect();
            messages.insert(message.name(), (message, fields));
        }
        for method in file.service.iter().flat_map(|s| &s.method) {
            inputs.push(local(method.input_type()));
            outputs.push(local(method.output_type()));
        }
    }
    let from_outputs = reached_from(&messages, outputs);
    let mut out = String::new();
    for name in reached_from(&messages, inputs) {
        let (message, fields) = &messages[name];
        if from_outputs.contains(name) || HAND_WRITTEN.contains(&name) || fields.is_empty() {
            continue;
        }
        // proto3 `optional` fields are synthetic oneofs, which prost maps to `Option`.
        let synthetic = fields.iter().filter(|f| f.proto.proto3_optional()).count();
        if !message.nested_type.is_empty() || message.oneof_decl.len() != synthetic {
            return Err(format!(
                "{name}: maps, nested types and oneofs are not supported"
            ));
        }
        builder(name, fields, &mut out)?;
    }
    Ok(out)
}

/// The messages reachable from `roots` through message fields, roots included.
fn reached_from<'a>(
    messages: &BTreeMap<&'a str, (&'a DescriptorProto, Vec<Field<'a>>)>,
    roots: Vec<&'a str>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo = roots;
    while let Some(name) = todo.pop() {
        if let Some((_, fields)) = messages.get(name)
            && seen.insert(name)
        {
            todo.extend(
                (fields.iter())
                    .filter(|f| f.proto.r#type() == Type::Message)
                    .map(|f| local(f.proto.type_name())),
            );
        }
    }
    seen
}

/// `.engram.v1.MemoryFilter` → `MemoryFilter` (other packages keep their full name).
fn local(type_name: &str) -> &str {
    type_name
        .strip_prefix(&format!(".{PACKAGE}."))
        .unwrap_or(type_name)
}

/// The leading comment of the element at `path`, one string per line.
fn comment(file: &prost_types::FileDescriptorProto, path: &[i32]) -> Vec<String> {
    let locations = file.source_code_info.iter().flat_map(|info| &info.location);
    let Some(location) = locations.into_iter().find(|l| l.path == path) else {
        return Vec::new();
    };
    (location.leading_comments().trim_end().lines())
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end().to_owned())
        .collect()
}

/// How a field is taken and stored.
enum Kind {
    /// One parameter of type `ty`; `store` is the stored expression, `{v}` being the parameter.
    Value { ty: String, store: String },
    /// `int64 <name>_seconds`: a `Duration`.
    Seconds,
    /// `google.protobuf.Struct`: one key and value.
    Struct,
}

/// One element of `field`: (parameter type, stored expression of `{v}`).
fn element(field: &FieldDescriptorProto) -> Result<(String, String), String> {
    let scalar = |ty: &str| Ok((ty.to_owned(), "{v}".to_owned()));
    match field.r#type() {
        Type::String => Ok(("impl Into<String>".into(), "{v}.into()".into())),
        Type::Bytes => Ok(("impl Into<Vec<u8>>".into(), "{v}.into()".into())),
        Type::Bool => scalar("bool"),
        Type::Float => scalar("f32"),
        Type::Double => scalar("f64"),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => scalar("i32"),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => scalar("i64"),
        Type::Uint32 | Type::Fixed32 => scalar("u32"),
        Type::Uint64 | Type::Fixed64 => scalar("u64"),
        Type::Enum if !local(field.type_name()).starts_with('.') => {
            Ok((local(field.type_name()).to_owned(), "{v} as i32".into()))
        }
        Type::Message => match local(field.type_name()) {
            ".google.protobuf.Timestamp" => {
                Ok(("SystemTime".into(), "crate::timestamp({v})".into()))
            }
            name if !name.starts_with('.') => scalar(name),
            name => match name.strip_prefix(".google.protobuf.") {
                Some(wkt) => scalar(&format!("::pbjson_types::{wkt}")),
                None => Err(format!("{}: type {name} is not supported", field.name())),
            },
        },
        other => Err(format!(
            "{}: {other:?} fields are not supported",
            field.name()
        )),
    }
}

fn kind(field: &FieldDescriptorProto) -> Result<Kind, String> {
    let (ty, store) = element(field)?;
    Ok(if field.label() == Label::Repeated {
        let map = match store.replace("{v}", "x").as_str() {
            "x" => String::new(),
            "x.into()" => ".map(Into::into)".into(),
            store => format!(".map(|x| {store})"),
        };
        Kind::Value {
            ty: format!("impl IntoIterator<Item = {ty}>"),
            store: format!("{{v}}.into_iter(){map}.collect()"),
        }
    } else if field.r#type() == Type::Int64 && field.name().ends_with("_seconds") {
        Kind::Seconds
    } else if field.type_name() == ".google.protobuf.Struct" {
        Kind::Struct
    } else if field.r#type() == Type::Message || field.proto3_optional() {
        Kind::Value {
            ty,
            store: format!("Some({store})"),
        }
    } else {
        Kind::Value { ty, store }
    })
}

fn docs(out: &mut String, lines: &[String]) {
    for line in lines {
        let _ = writeln!(out, "///{}{line}", if line.is_empty() { "" } else { " " });
    }
}

fn builder(name: &str, fields: &[Field<'_>], out: &mut String) -> Result<(), String> {
    let (required, optional): (Vec<_>, Vec<_>) = fields.iter().partition(|f| {
        f.doc
            .first()
            .is_some_and(|line| line.starts_with("Required"))
            || ALSO_REQUIRED.contains(&(name, f.proto.name()))
    });

    let _ = writeln!(out, "impl {name} {{");
    // new(..)
    let (mut params, mut inits) = (Vec::new(), Vec::new());
    if required.is_empty() {
        let _ = writeln!(
            out,
            "/// An empty message: set its fields with the `with_*` methods."
        );
    } else {
        let _ = writeln!(out, "/// Builds the message from its required fields:\n///");
    }
    for field in &required {
        let field_name = field.proto.name();
        let Kind::Value { ty, store } = kind(field.proto)? else {
            return Err(format!(
                "{name}.{field_name}: a required field must be a plain value"
            ));
        };
        let summary = field.doc.join(" ");
        let summary = summary.strip_prefix("Required").unwrap_or(&summary);
        let bullet = format!(
            "* `{field_name}`: {}",
            summary.trim_start_matches([',', '.', ' '])
        );
        docs(out, &wrap(&bullet, 92, "  "));
        params.push(format!("{field_name}: {ty}"));
        let value = store.replace("{v}", field_name);
        inits.push(if value == field_name {
            value
        } else {
            format!("{field_name}: {value}")
        });
    }
    if !required.is_empty() && !optional.is_empty() {
        let _ = writeln!(
            out,
            "///\n/// Set the other fields with the `with_*` methods."
        );
    }
    if !optional.is_empty() {
        inits.push("..Default::default()".into());
    }
    let body = match inits.as_slice() {
        [_] if required.is_empty() => "Self::default()".to_owned(),
        _ => format!("Self {{ {} }}", inits.join(", ")),
    };
    let _ = writeln!(
        out,
        "pub fn new({}) -> Self {{ {body} }}",
        params.join(", ")
    );

    // with_<field>(..) and with_<singular>(..)
    let names: BTreeSet<&str> = fields.iter().map(|f| f.proto.name()).collect();
    for field in &optional {
        let field_name = field.proto.name();
        out.push('\n');
        docs(out, &field.doc);
        match kind(field.proto)? {
            Kind::Value { ty, store } => {
                let store = store.replace("{v}", field_name);
                let _ = writeln!(
                    out,
                    "pub fn with_{field_name}(mut self, {field_name}: {ty}) -> Self {{ self.{field_name} = {store}; self }}"
                );
                if field.proto.label() == Label::Repeated
                    && let Some(one) = singular(field_name)
                    && !names.contains(one)
                {
                    let (ty, store) = element(field.proto)?;
                    let store = store.replace("{v}", one);
                    let _ = writeln!(
                        out,
                        "\n/// Adds one value to `{field_name}` (see [`with_{field_name}`](Self::with_{field_name})).\n\
                         pub fn with_{one}(mut self, {one}: {ty}) -> Self {{ self.{field_name}.push({store}); self }}"
                    );
                }
            }
            Kind::Seconds => {
                let base = field_name
                    .strip_suffix("_seconds")
                    .expect("checked by kind()");
                let _ = writeln!(
                    out,
                    "///\n/// Takes a `Duration`, sent in whole seconds rounded up.\n\
                     pub fn with_{base}(mut self, {base}: Duration) -> Self {{ \
                     self.{field_name} = crate::requests::whole_seconds({base}); self }}"
                );
            }
            Kind::Struct => {
                let _ = writeln!(
                    out,
                    "///\n/// Sets one key of the object; call again for more keys, or replace the whole\n\
                     /// object with [`with_{field_name}_object`](Self::with_{field_name}_object).\n\
                     pub fn with_{field_name}(mut self, key: impl Into<String>, value: impl crate::IntoValue) -> Self {{ \
                     self.{field_name}.get_or_insert_with(Default::default).fields.insert(key.into(), value.into_value()); self }}\n\n\
                     /// Replaces the whole `{field_name}` object (see [`json_object`](crate::json_object())).\n\
                     pub fn with_{field_name}_object(mut self, {field_name}: ::pbjson_types::Struct) -> Self {{ \
                     self.{field_name} = Some({field_name}); self }}"
                );
            }
        }
    }
    out.push_str("}\n\n");

    // From<the one required field>, so that `client.get("mem-1")` works.
    if let [field] = required.as_slice()
        && field.proto.label() != Label::Repeated
    {
        let types = match element(field.proto)?.0.as_str() {
            "impl Into<String>" => vec!["&str".to_owned(), "String".into(), "&String".into()],
            ty if field.proto.r#type() == Type::Message => vec![ty.to_owned()],
            _ => Vec::new(),
        };
        for ty in types {
            let _ = writeln!(
                out,
                "impl From<{ty}> for {name} {{ fn from(v: {ty}) -> Self {{ Self::new(v) }} }}\n"
            );
        }
    }
    Ok(())
}

/// `tags` → `tag`, `agent_ids` → `agent_id`; `None` when the name is not a plain plural.
fn singular(name: &str) -> Option<&str> {
    name.strip_suffix('s').filter(|s| !s.ends_with('s'))
}

/// `text` in lines of at most `width` characters (longer words stay whole), the lines after the
/// first indented by `indent`.
fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.trim().is_empty() && line.len() + 1 + word.len() > width {
            lines.push(format!("{indent}{word}"));
        } else {
            if !line.trim().is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

//! OpenAPI schemas of the JSON views (feature `openapi`), for the node's API document.
//!
//! The derived schemas follow serde's attributes (renames, tags, flattening); what the derive
//! cannot see is written here: [`Hash32`] and [`ChannelId`] serialise as constrained strings,
//! and byte strings (`#[serde(with = "hex_bytes")]`) as [`Hex`].

use crate::types::{ChannelId, Hash32};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

fn string(pattern: &str, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(Some(description)).into()
}

impl PartialSchema for Hash32 {
    fn schema() -> RefOr<Schema> {
        string("^(0x)?[0-9a-fA-F]{64}$", "A 32-byte digest of the channel suite's hash, hex (written lowercase, read with or without `0x`).")
    }
}
impl ToSchema for Hash32 {}

impl PartialSchema for ChannelId {
    fn schema() -> RefOr<Schema> {
        string("^[a-z0-9][a-z0-9-]{0,31}$", "A channel id.")
    }
}
impl ToSchema for ChannelId {}

/// A byte string in a JSON view: hex (written lowercase, read with or without `0x`).
/// Only a schema: name it with `#[schema(value_type = Hex)]` on a `hex_bytes` field.
pub struct Hex;

impl PartialSchema for Hex {
    fn schema() -> RefOr<Schema> {
        string("^(0x)?([0-9a-fA-F]{2})*$", "Bytes, hex (written lowercase, read with or without `0x`).")
    }
}
impl ToSchema for Hex {}

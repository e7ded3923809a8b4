//! Compiles the `.proto` files with protox (pure Rust: no system protoc needed)
//! and generates prost messages and tonic services from the descriptor set.

use std::path::PathBuf;

use prost::Message as _;

const PROTO_ROOT: &str = "proto";
const FILES: &[&str] = &[
    "roomcast/client/v1/client.proto",
    "roomcast/internal/v1/push.proto",
    "roomcast/internal/v1/biz.proto",
];
/// Byte fields of client frames, rendered as base64 strings in the JSON subprotocol
/// (the proto3 JSON mapping for `bytes`).
const BASE64_FIELDS: &[&str] = &[
    ".roomcast.client.v1.Publish.payload",
    ".roomcast.client.v1.RoomSnapshot.state",
    ".roomcast.client.v1.RoomMessage.body",
    ".roomcast.client.v1.Ephemeral.body",
    ".roomcast.client.v1.Reply.body",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let fds = protox::compile(FILES, [PROTO_ROOT])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("roomcast_descriptor.bin"), fds.encode_to_vec())?;
    let mut builder = tonic_prost_build::configure()
        .bytes(".")
        .type_attribute(
            ".roomcast.client.v1",
            "#[derive(serde::Serialize, serde::Deserialize)]",
        )
        .message_attribute(".roomcast.client.v1", "#[serde(default)]")
        .enum_attribute(
            ".roomcast.client.v1",
            "#[serde(rename_all = \"snake_case\")]",
        );
    for field in BASE64_FIELDS {
        builder = builder.field_attribute(field, "#[serde(with = \"crate::base64_bytes\")]");
    }
    builder.compile_fds(fds)?;
    Ok(())
}

#!/usr/bin/env bash
# Regenerates onnx/src/proto/onnx.rs from onnx/proto/onnx.proto.
#
# The generated Rust is committed so that building fqc needs neither protoc nor
# protox (fast clean builds in CI). Run this only after updating onnx.proto, e.g.
#   cp "$(python3 -c 'import onnx,os;print(os.path.dirname(onnx.__file__))')/onnx.proto" onnx/proto/
#   bash onnx/proto/regen.sh
# It builds a throw-away generator crate (prost-build 0.14 + protox, pure Rust, no
# protoc) outside the repository and writes the result next to mod.rs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../src/proto"
gen="${ONNXGEN_DIR:-$(mktemp -d /tmp/onnxgen.XXXXXX)}"
mkdir -p "$gen/src"
cat > "$gen/Cargo.toml" <<'TOML'
[package]
name = "onnxgen"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
prost-build = "0.14"
protox = "0.9"

[workspace]
TOML
cat > "$gen/src/main.rs" <<'RS'
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (proto_dir, out_dir) = (&args[1], &args[2]);
    let fds = protox::compile(["onnx.proto"], [proto_dir.as_str()])?;
    prost_build::Config::new()
        .out_dir(out_dir)
        .compile_fds(fds)?;
    Ok(())
}
RS
cargo run --quiet --release --manifest-path "$gen/Cargo.toml" -- "$here" "$out"
# prost-build names the file after the proto package.
echo "wrote $out/onnx.rs"

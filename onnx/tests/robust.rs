//! Hostile and malformed input: every case must be a clear error, never a panic, a hang
//! or an unbounded allocation.

mod common;

use std::path::PathBuf;

use common::*;
use fqc_onnx::proto::{
    tensor_proto::{DataLocation, DataType},
    OperatorSetIdProto, StringStringEntryProto, TensorProto,
};
use prost::Message;

/// A small valid model: Conv with an initializer weight.
fn valid() -> G {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(2), V(4), V(4)]).output("y");
    g.init(tf32("w", &[3, 2, 1, 1], ramp(6, 1.0)));
    g.node("Conv", &["x", "w"], &["y"]);
    g
}

fn with_init(t: TensorProto) -> G {
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    g.init(t);
    g.node("Identity", &["x"], &["y"]);
    g
}

#[test]
fn truncated_file() {
    let bytes = valid().bytes();
    let e = fqc_onnx::import_bytes(&bytes[..bytes.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("not an ONNX model") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn random_bytes() {
    let mut s = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let e = fqc_onnx::import_bytes(&bytes).unwrap_err().to_string();
    assert!(
        e.starts_with("not an ONNX model") || e.starts_with("invalid model"),
        "{e}"
    );
    let e = fqc_onnx::import_bytes(b"").unwrap_err().to_string();
    assert!(e.contains("no ai.onnx opset"), "{e}");
}

#[test]
fn mutated_models_never_panic() {
    let base = valid().bytes();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
        }
        let _ = fqc_onnx::import_bytes(&b);
        let cut = (next() as usize) % b.len();
        let _ = fqc_onnx::import_bytes(&b[..cut]);
    }
}

#[test]
fn unknown_op() {
    let mut g = valid();
    g.graph.node[0].op_type = Some("FancyConv".into());
    g.graph.node[0].name = Some("/conv1/Conv".into());
    assert_eq!(
        g.err(),
        "node `/conv1/Conv` (FancyConv, ai.onnx opset 13): unsupported op type `FancyConv`"
    );
}

#[test]
fn other_domain() {
    let mut g = valid();
    g.graph.node[0].domain = Some("com.microsoft".into());
    let e = g.err();
    assert!(
        e.contains("(Conv, com.microsoft opset 13)") && e.contains("only ai.onnx"),
        "{e}"
    );
}

#[test]
fn unsupported_attribute() {
    let mut g = valid();
    g.graph.node[0].name = Some("/conv1/Conv".into());
    g.graph.node[0].attribute.push(ai("foo", 1));
    assert_eq!(
        g.err(),
        "node `/conv1/Conv` (Conv, ai.onnx opset 13): unsupported attribute `foo`"
    );
}

#[test]
fn unsupported_attribute_value_and_type() {
    let mut g = valid();
    g.graph.node[0]
        .attribute
        .push(astr("auto_pad", "SAME_WEIRD"));
    assert!(g.err().contains("unsupported auto_pad `SAME_WEIRD`"));
    let mut g = valid();
    g.graph.node[0].attribute.push(af("group", 1.0));
    assert!(g.err().contains("attribute `group` must be INT, got FLOAT"));
    let mut g = valid();
    g.graph.node[0].attribute.push(ais("strides", &[0, 1]));
    assert!(g.err().contains("invalid values"));
}

#[test]
fn opset_out_of_range() {
    for v in [5, 29] {
        let mut g = valid();
        g.opset = v;
        let e = g.err();
        assert!(e.contains(&format!("opset {v} is not supported")), "{e}");
    }
    let mut m = valid().model();
    m.opset_import = vec![OperatorSetIdProto {
        domain: Some("ai.onnx.ml".into()),
        version: Some(3),
    }];
    let e = fqc_onnx::import_bytes(&m.encode_to_vec())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no ai.onnx opset"), "{e}");
}

#[test]
fn absurd_shape() {
    let t = TensorProto {
        name: Some("big".into()),
        dims: vec![1_000_000, 1_000_000],
        data_type: Some(DataType::Float as i32),
        ..Default::default()
    };
    let e = with_init(t).err();
    assert_eq!(
        e,
        "tensor `big`: shape [1000000, 1000000] has more than the limit of 2^28 elements"
    );
    let t = TensorProto {
        name: Some("huge".into()),
        dims: vec![i64::MAX, i64::MAX, 0],
        data_type: Some(DataType::Float as i32),
        ..Default::default()
    };
    assert!(with_init(t).err().contains("more than the limit"));
}

#[test]
fn negative_dims() {
    let t = TensorProto {
        name: Some("neg".into()),
        dims: vec![2, -3],
        data_type: Some(DataType::Float as i32),
        ..Default::default()
    };
    assert_eq!(
        with_init(t).err(),
        "tensor `neg`: negative dimension -3 in [2, -3]"
    );
}

#[test]
fn raw_data_length_mismatch() {
    let t = TensorProto {
        name: Some("w".into()),
        dims: vec![2, 2],
        data_type: Some(DataType::Float as i32),
        raw_data: Some(vec![0; 12]),
        ..Default::default()
    };
    let e = with_init(t).err();
    assert_eq!(
        e,
        "tensor `w`: raw data has 12 bytes, but shape [2, 2] of FLOAT needs 16"
    );
    let t = tf32("w", &[3], vec![1.0]);
    assert!(with_init(t)
        .err()
        .contains("has 1 stored elements, but shape [3] needs 3"));
}

#[test]
fn unsupported_element_type() {
    let t = TensorProto {
        name: Some("d".into()),
        dims: vec![1],
        data_type: Some(DataType::Double as i32),
        double_data: vec![1.0],
        ..Default::default()
    };
    assert!(with_init(t)
        .err()
        .contains("element type DOUBLE is not supported"));
}

#[test]
fn huge_constant_of_shape() {
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    g.init(ti64("s", &[3], vec![100_000, 100_000, 100_000]));
    g.node("ConstantOfShape", &["s"], &["c"]);
    g.node("Add", &["x", "c"], &["y"]);
    let e = g.err();
    assert!(
        e.contains("(ConstantOfShape, ai.onnx opset 13)")
            && e.contains("more than the limit of 2^28"),
        "{e}"
    );
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    g.init(ti64("s", &[1], vec![-5]));
    g.node("ConstantOfShape", &["s"], &["y"]);
    assert!(g.err().contains("negative dimension"));
}

#[test]
fn symbolic_constant_of_shape_is_refused() {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(2)]).output("y");
    g.node("Shape", &["x"], &["s"]);
    g.node("ConstantOfShape", &["s"], &["c"]);
    g.node("Add", &["x", "c"], &["y"]);
    assert!(g.err().contains("must not depend on the batch size"));
}

#[test]
fn bad_graph_inputs() {
    let mut g = G::new(13);
    g.input("x", &[]).output("x");
    assert!(g.err().contains("graph input `x`: must have rank >= 1"));
    let mut g = G::new(13);
    g.graph.input.push(vi("x", DataType::Int32, &[V(1)]));
    g.output("x");
    assert!(g.err().contains("element type INT32 is not supported"));
    let mut g = G::new(13);
    g.input("x", &[V(1), V(-4)]).output("x");
    assert!(g.err().contains("dim 1 has invalid extent -4"));
}

#[test]
fn undefined_values_and_outputs() {
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    g.node("Relu", &["nope"], &["y"]);
    assert!(g.err().contains("input `nope` is not defined"));
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    assert!(g.err().contains("graph output `y` is never computed"));
}

// ---- external data ----

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fqc-onnx-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn external(location: &str, extra: &[(&str, &str)]) -> G {
    let mut kv = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some(location.into()),
    }];
    for (k, v) in extra {
        kv.push(StringStringEntryProto {
            key: Some(k.to_string()),
            value: Some(v.to_string()),
        });
    }
    let t = TensorProto {
        name: Some("w".into()),
        dims: vec![3, 2, 1, 1],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: kv,
        ..Default::default()
    };
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(2), V(4), V(4)]).output("y");
    g.init(t);
    g.node("Conv", &["x", "w"], &["y"]);
    g
}

fn write_model(dir: &std::path::Path, g: &G) -> PathBuf {
    let p = dir.join("model.onnx");
    std::fs::write(&p, g.bytes()).unwrap();
    p
}

fn weights() -> Vec<u8> {
    let mut b = vec![0xAAu8; 8]; // 8 bytes of padding before the data
    for i in 0..6 {
        b.extend_from_slice(&(i as f32).to_le_bytes());
    }
    b
}

#[test]
fn external_data_inside_folder_is_read() {
    let d = TempDir::new("ext-ok");
    std::fs::create_dir_all(d.0.join("sub")).unwrap();
    std::fs::write(d.0.join("sub/w.bin"), weights()).unwrap();
    let g = external("sub/w.bin", &[("offset", "8"), ("length", "24")]);
    let ir = fqc_onnx::import_file(&write_model(&d.0, &g)).unwrap();
    let w = ir.nodes().next().unwrap().1.inputs[1];
    assert_eq!(
        ir.const_tensor(w).unwrap().as_f32().unwrap(),
        &[0., 1., 2., 3., 4., 5.]
    );
}

#[test]
fn external_data_refused_from_bytes() {
    let e = fqc_onnx::import_bytes(&external("w.bin", &[]).bytes())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("external data of tensor `w`: external data is not allowed"),
        "{e}"
    );
}

#[test]
fn external_data_leaving_folder() {
    let d = TempDir::new("ext-escape");
    let inner = d.0.join("model");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(d.0.join("x.bin"), weights()).unwrap();
    let e = fqc_onnx::import_file(&write_model(
        &inner,
        &external("../x.bin", &[("offset", "8")]),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("location `../x.bin` must be a relative path inside the model's folder"),
        "{e}"
    );
    let abs = d.0.join("x.bin");
    let abs = abs.to_str().unwrap();
    let e = fqc_onnx::import_file(&write_model(&inner, &external(abs, &[("offset", "8")])))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("must be a relative path inside the model's folder"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn external_data_symlink_escaping_folder() {
    let d = TempDir::new("ext-symlink");
    let inner = d.0.join("model");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(d.0.join("x.bin"), weights()).unwrap();
    std::os::unix::fs::symlink(d.0.join("x.bin"), inner.join("link.bin")).unwrap();
    let e = fqc_onnx::import_file(&write_model(
        &inner,
        &external("link.bin", &[("offset", "8")]),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("location `link.bin` leaves the model's folder"),
        "{e}"
    );
}

#[test]
fn external_data_missing_file() {
    let d = TempDir::new("ext-missing");
    let e = fqc_onnx::import_file(&write_model(&d.0, &external("nope.bin", &[])))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("external data of tensor `w`: cannot open `nope.bin`"),
        "{e}"
    );
}

#[test]
fn external_data_bad_ranges() {
    let d = TempDir::new("ext-range");
    std::fs::write(d.0.join("w.bin"), weights()).unwrap();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("offset", "8"), ("length", "20")],
            "length 20 does not match the 24 bytes",
        ),
        (&[("offset", "1000")], "offset 1000 is past the end"),
        (
            &[("offset", "16"), ("length", "24")],
            "past the end of `w.bin`",
        ),
        (&[("offset", "-1")], "is not a non-negative integer"),
    ];
    for (extra, want) in cases {
        let e = fqc_onnx::import_file(&write_model(&d.0, &external("w.bin", extra)))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn missing_model_file() {
    let e = fqc_onnx::import_file(std::path::Path::new("/nonexistent/m.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot read `/nonexistent/m.onnx`"), "{e}");
}

// ---- decode_tensor_proto ----

#[test]
fn decode_tensor_proto_types() {
    let t =
        fqc_onnx::decode_tensor_proto(&tf32("a", &[2], vec![1.0, 2.0]).encode_to_vec()).unwrap();
    assert_eq!(
        (t.shape.clone(), t.as_f32().unwrap().to_vec()),
        (vec![2], vec![1.0, 2.0])
    );
    let t = fqc_onnx::decode_tensor_proto(&ti64("a", &[], vec![7]).encode_to_vec()).unwrap();
    assert_eq!(t.as_i64().unwrap(), &[7]);
    let raw = TensorProto {
        dims: vec![3],
        data_type: Some(DataType::Int8 as i32),
        raw_data: Some(vec![0xff, 1, 2]),
        ..Default::default()
    };
    let t = fqc_onnx::decode_tensor_proto(&raw.encode_to_vec()).unwrap();
    assert_eq!(t.data, fqc_ir::TensorData::I8(vec![-1, 1, 2]));
    let u8t = TensorProto {
        dims: vec![2],
        data_type: Some(DataType::Uint8 as i32),
        int32_data: vec![200, 3],
        ..Default::default()
    };
    let t = fqc_onnx::decode_tensor_proto(&u8t.encode_to_vec()).unwrap();
    assert_eq!(t.data, fqc_ir::TensorData::U8(vec![200, 3]));
    let i32t = TensorProto {
        dims: vec![1],
        data_type: Some(DataType::Int32 as i32),
        int32_data: vec![-9],
        ..Default::default()
    };
    let t = fqc_onnx::decode_tensor_proto(&i32t.encode_to_vec()).unwrap();
    assert_eq!(t.data, fqc_ir::TensorData::I32(vec![-9]));
    for (dt, name) in [
        (DataType::Double, "DOUBLE"),
        (DataType::Float16, "FLOAT16"),
        (DataType::Bool, "BOOL"),
    ] {
        let t = TensorProto {
            name: Some("t".into()),
            dims: vec![1],
            data_type: Some(dt as i32),
            ..Default::default()
        };
        let e = fqc_onnx::decode_tensor_proto(&t.encode_to_vec())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("element type {name} is not supported")),
            "{e}"
        );
    }
    let e = fqc_onnx::decode_tensor_proto(&[0x0a, 0xff])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("not an ONNX tensor"), "{e}");
}

#[test]
fn folding_is_bounded() {
    // Outer product of two constant 2^15-vectors: 2^30 elements.
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    g.init(tf32("a", &[1 << 15, 1], vec![1.0; 1 << 15]));
    g.init(tf32("b", &[1, 1 << 15], vec![1.0; 1 << 15]));
    g.node("MatMul", &["a", "b"], &["c"]);
    g.node("Add", &["x", "c"], &["y"]);
    let e = g.err();
    assert!(
        e.contains("constant folding would create a tensor of shape [32768,32768]"),
        "{e}"
    );
}

#[test]
fn shape_values_stay_short() {
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("y");
    g.init(ti64("s", &[64], vec![1; 64]));
    g.node("Concat", &["s", "s"], &["s2"])
        .attribute
        .push(ai("axis", 0));
    g.node("Reshape", &["x", "s2"], &["y"]);
    assert!(g.err().contains("shape values longer than 64"));
}

#[test]
fn messages_stay_on_one_line() {
    let mut g = valid();
    g.graph.node[0].name = Some("evil\nname".into());
    g.graph.node[0].op_type = Some("Bad\r\nOp".into());
    let e = g.err();
    assert!(!e.contains('\n') && !e.contains('\r'), "{e}");
    assert!(e.starts_with("node `evil\\nname` (Bad\\r\\nOp"), "{e}");
}

#[test]
fn symbolic_height_and_width_need_an_input_shape() {
    use fqc_onnx::InputShape;
    let mut g = G::new(13);
    g.input("x", &[V(-1), V(3), P("h"), P("w")]).output("y");
    g.node("Relu", &["x"], &["y"]);
    let e = g.err();
    assert!(
        e.contains("dim 2 is symbolic (`h`)") && e.contains("--input-shape x=Nx3x?x?"),
        "{e}"
    );
    let bytes = g.bytes();
    let shape = |s: &str| vec![s.parse::<InputShape>().unwrap()];
    let ok = fqc_onnx::import_bytes_with(&bytes, &shape("x=Nx3x48x192")).unwrap();
    assert_eq!(ok.ty(ok.inputs()[0]).shape.to_string(), "[N,3,48,192]");
    // The name may be left out for a one-input model; a fixed batch is allowed.
    let ok = fqc_onnx::import_bytes_with(&bytes, &shape("2x3x8x8")).unwrap();
    assert_eq!(ok.ty(ok.inputs()[0]).shape.to_string(), "[2,3,8,8]");
    // A given shape must agree with the model where it fixes a dim, have its rank, and
    // name a real input.
    for (given, piece) in [
        (
            "x=Nx4x8x8",
            "dim 1 is 3 in the model; --input-shape gives 4",
        ),
        ("x=Nx3x8", "has 3 dims, the input has 4"),
        ("y=Nx3x8x8", "the model has no input `y` (its inputs: x)"),
    ] {
        let e = fqc_onnx::import_bytes_with(&bytes, &shape(given))
            .unwrap_err()
            .to_string();
        assert!(e.contains(piece), "{given}: {e}");
    }
    let twice = vec![
        "x=Nx3x8x8".parse::<InputShape>().unwrap(),
        "Nx3x8x8".parse::<InputShape>().unwrap(),
    ];
    let e = fqc_onnx::import_bytes_with(&bytes, &twice)
        .unwrap_err()
        .to_string();
    assert!(e.contains("given twice"), "{e}");
}

#[test]
fn input_shape_flags_parse_strictly() {
    use fqc_onnx::{GivenDim, InputShape};
    let s: InputShape = "img=Nx3x48x192".parse().unwrap();
    assert_eq!(s.name.as_deref(), Some("img"));
    assert_eq!(
        s.dims,
        vec![
            GivenDim::Batch,
            GivenDim::Fixed(3),
            GivenDim::Fixed(48),
            GivenDim::Fixed(192)
        ]
    );
    assert_eq!(s.to_string(), "img=Nx3x48x192");
    for bad in ["", "x=", "=1x2", "1xNx3", "x=1x0", "x=1x-3", "x=1xhx2"] {
        assert!(bad.parse::<InputShape>().is_err(), "{bad}");
    }
}

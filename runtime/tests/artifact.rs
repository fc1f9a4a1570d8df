//! `.fqc` artifact tests: exact round trips of graphs using every op and dtype, the
//! packed size of a ternary layer, atomic file saving, and the loader's behaviour on
//! truncated, random, mislabelled, newer, flipped, oversized and semantically broken
//! inputs (each a clear error, none a panic).

mod common;

use common::{dtype_graph, float_graph, quant_graph, ternary_conv_layer};
use fqc_ir::{text::print, Graph, Op, F32};
use fqc_runtime::artifact::encoding::{decode, PayloadEncoding};
use fqc_runtime::artifact::pack::pack;
use fqc_runtime::artifact::schema::{
    attr_proto::Value as AttrValue, value_proto::Def, ConstProto, DTypeProto, ElemKind, GraphProto,
    TypeProto, ValueProto, END_MARKER,
};
use fqc_runtime::artifact::{
    checksum, frame, load, load_file, save, save_file, try_save, ArtifactError, FORMAT_VERSION,
    HEADER_LEN, MAGIC, MIN_FORMAT_VERSION,
};
use proptest::prelude::*;
use prost::Message;

fn graphs() -> Vec<Graph> {
    vec![
        float_graph(),
        quant_graph(),
        dtype_graph(),
        ternary_conv_layer(),
    ]
}

/// The body of an artifact, decoded.
fn body(bytes: &[u8]) -> GraphProto {
    GraphProto::decode(&bytes[HEADER_LEN..]).unwrap()
}

fn reframe(p: &GraphProto) -> Vec<u8> {
    frame(&p.encode_to_vec())
}

#[test]
fn every_op_variant_is_covered() {
    let mut names: Vec<&str> = graphs()
        .iter()
        .flat_map(|g| g.nodes().map(|(_, n)| n.op.name()).collect::<Vec<_>>())
        .collect();
    names.sort();
    names.dedup();
    // 26 `Op` variants, `Binary` counted as its four ops (add, sub, mul, div): 29 names.
    assert_eq!(names.len(), 29, "{names:?}");
}

#[test]
fn round_trip_is_exact() {
    for g in graphs() {
        fqc_ir::verify(&g).unwrap();
        let bytes = save(&g);
        let back = load(&bytes).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(print(&back), print(&g), "{}", g.name);
        // Every field, incl. all constant payloads, equals the compacted original.
        assert!(back == g.compact(), "{}", g.name);
        // Saving is deterministic and idempotent.
        assert_eq!(save(&back), bytes);
        assert_eq!(try_save(&g).unwrap(), bytes);
    }
}

#[test]
fn float_attributes_round_trip_bit_for_bit() {
    // proto3 would drop a `float` field equal to 0.0, turning -0.0 into +0.0: attributes
    // are stored as bit patterns, so signed zeros, infinities and NaN payloads survive.
    let mut g = float_graph();
    let weird = [
        -0.0f32,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234),
        f32::MIN_POSITIVE,
    ];
    let (n, _) = g.nodes().find(|(_, n)| n.name == "lrn").unwrap();
    g.node_mut(n).op = Op::Lrn {
        size: 3,
        alpha: F32(weird[0]),
        beta: F32(weird[1]),
        bias: F32(weird[2]),
    };
    let back = load(&save(&g)).unwrap();
    let (_, node) = back.nodes().find(|(_, n)| n.name == "lrn").unwrap();
    let Op::Lrn {
        alpha, beta, bias, ..
    } = node.op
    else {
        panic!("{:?}", node.op)
    };
    let bits = |x: F32| x.get().to_bits();
    assert_eq!(
        [bits(alpha), bits(beta), bits(bias)],
        [weird[0].to_bits(), weird[1].to_bits(), weird[2].to_bits()]
    );
}

#[test]
fn round_trip_keeps_payloads() {
    let g = quant_graph();
    let back = load(&save(&g)).unwrap();
    let c = g.compact();
    let mut n = 0;
    for (v, _) in c.values() {
        if let Some(t) = c.const_tensor(v) {
            assert_eq!(back.const_tensor(v), Some(t));
            n += 1;
        }
    }
    assert!(n > 20, "{n} constants compared");
}

#[test]
fn dead_nodes_are_not_saved() {
    let g = float_graph();
    let back = load(&save(&g)).unwrap();
    assert!(back.nodes().all(|(_, n)| n.name != "dead"));
    assert_eq!(back.num_nodes(), g.compact().num_nodes());
}

#[test]
fn elided_payloads_round_trip_as_elided() {
    // A graph read back from text has digests but no payloads for large constants.
    let g = fqc_ir::text::parse(&print(&quant_graph())).unwrap();
    let back = load(&save(&g)).unwrap();
    assert!(back == g.compact());
    assert!(back
        .values()
        .any(|(v, _)| back.is_const(v) && back.const_tensor(v).is_none()));
}

#[test]
fn ternary_layer_is_at_most_an_eighteenth_of_f32() {
    let bytes = save(&ternary_conv_layer());
    let f32_payload = 64 * 64 * 3 * 3 * 4;
    let ratio = bytes.len() as f64 / f32_payload as f64;
    println!(
        "ternary 64x64x3x3 conv layer: artifact {} bytes, f32 weight payload {f32_payload} bytes, \
         ratio {ratio:.4} (1/{:.2})",
        bytes.len(),
        1.0 / ratio
    );
    // The whole artifact (weights at 1.6 bits, 64 f32 scales, 64 i32 biases, graph,
    // header) fits.
    assert!(bytes.len() <= f32_payload / 18, "{} bytes", bytes.len());
}

/// Frames `body` with an explicit format version (`frame` writes the current one).
fn frame_version(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The format-2 body of `g`: every op in its per-kind message (what fqc 2 wrote).
fn version2_body(g: &Graph) -> GraphProto {
    let mut p = body(&save(g));
    for v in &mut p.values {
        if let Some(Def::Node(n)) = &mut v.def {
            let op = fqc_runtime::artifact::legacy::op_from_table_for_tests(n.table_op.take());
            n.op = Some(fqc_runtime::artifact::legacy::op_to_proto(&op).expect("a format-2 op"));
        }
    }
    p
}

/// The format-1 body of `g`: the format-2 body with every payload re-encoded `Plain`
/// (what fqc 1 wrote).
fn version1_body(g: &Graph) -> GraphProto {
    let mut p = version2_body(g);
    for v in &mut p.values {
        let ty = v.ty.clone().unwrap();
        if let Some(Def::Const(c)) = &mut v.def {
            let Some(bytes) = &c.payload else { continue };
            let dtype = match ElemKind::try_from(ty.dtype.unwrap().kind).unwrap() {
                ElemKind::F32 => fqc_ir::DType::F32,
                ElemKind::I32 => fqc_ir::DType::I32,
                ElemKind::I64 => fqc_ir::DType::I64,
                ElemKind::Ternary => fqc_ir::DType::Ternary,
                k => fqc_ir::DType::int(k == ElemKind::SInt, ty.dtype.unwrap().bits as u8).unwrap(),
            };
            let n: u64 = ty.dims.iter().map(|&d| d as u64).product();
            let row = ty.dims.last().map_or(1, |&d| d as u64);
            let enc = PayloadEncoding::try_from(c.encoding).unwrap();
            let data = decode(enc, dtype, n, row, bytes).unwrap();
            c.payload = Some(pack(dtype, &data).unwrap());
            c.encoding = PayloadEncoding::Plain as i32;
        }
    }
    p
}

#[test]
fn format_1_and_2_files_still_load() {
    assert_eq!((MIN_FORMAT_VERSION, FORMAT_VERSION), (1, 3));
    for g in graphs() {
        let v2 = frame_version(2, &version2_body(&g).encode_to_vec());
        let back = load(&v2).unwrap_or_else(|e| panic!("{} (format 2): {e}", g.name));
        assert!(back == g.compact(), "{}", g.name);
        let p = version1_body(&g);
        let v1 = frame_version(1, &p.encode_to_vec());
        let back = load(&v1).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert!(back == g.compact(), "{}", g.name);
        // Re-saving writes the current format, whose payloads are smaller than format
        // 1's (its ops, stored with their attribute names, may take a few bytes more).
        let v3 = save(&back);
        assert_eq!(v3[8..12], FORMAT_VERSION.to_le_bytes());
        let payloads = |p: &GraphProto| -> usize {
            p.values
                .iter()
                .filter_map(|v| match &v.def {
                    Some(Def::Const(c)) => c.payload.as_ref().map(Vec::len),
                    _ => None,
                })
                .sum()
        };
        let (now, then) = (payloads(&body(&v3)), payloads(&p));
        assert!(now <= then, "{}: {now} > {then}", g.name);
    }
    // A format-3 body read as format 2 has no ops; a format-2 body read as 3 neither.
    let g = quant_graph();
    let e = load(&frame_version(2, &body(&save(&g)).encode_to_vec())).unwrap_err();
    assert!(e.to_string().contains("missing op"), "{e}");
    let e = load(&frame_version(3, &version2_body(&g).encode_to_vec())).unwrap_err();
    assert!(e.to_string().contains("missing op"), "{e}");
}

#[test]
fn format_2_encodings_are_used_and_refused_in_format_1() {
    let bytes = save(&ternary_conv_layer());
    let p = body(&bytes);
    let encodings: Vec<i32> = p
        .values
        .iter()
        .filter_map(|v| match &v.def {
            Some(Def::Const(c)) => Some(c.encoding),
            _ => None,
        })
        .collect();
    assert!(
        encodings.contains(&(PayloadEncoding::Trits as i32)),
        "{encodings:?}"
    );
    // The same body labelled format 1 is corrupt, naming the encoding.
    let err = load(&frame_version(1, &bytes[HEADER_LEN..])).unwrap_err();
    assert!(matches!(err, ArtifactError::Corrupt(_)), "{err}");
    assert!(
        err.to_string().contains("does not exist in format 1"),
        "{err}"
    );
    // An unknown encoding is corrupt in any format.
    let mut q = p.clone();
    for v in &mut q.values {
        if let Some(Def::Const(c)) = &mut v.def {
            c.encoding = 9;
        }
    }
    let err = load(&reframe(&q)).unwrap_err();
    assert!(
        err.to_string().contains("unknown payload encoding 9"),
        "{err}"
    );
    // An encoding that does not fit the dtype (trits on f32 scales) is corrupt.
    let mut q = p.clone();
    for v in &mut q.values {
        if let Some(Def::Const(c)) = &mut v.def {
            c.encoding = PayloadEncoding::Trits as i32;
        }
    }
    let err = load(&reframe(&q)).unwrap_err();
    assert!(
        err.to_string()
            .contains("trits payload encoding does not apply"),
        "{err}"
    );
}

#[test]
fn save_file_is_atomic_and_loads_back() {
    let dir = std::env::temp_dir().join(format!("fqc-artifact-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.fqc");
    save_file(&path, &quant_graph()).unwrap();
    assert!(load_file(&path).unwrap() == quant_graph().compact());
    // Overwrite with another graph.
    save_file(&path, &float_graph()).unwrap();
    assert!(load_file(&path).unwrap() == float_graph().compact());
    // A refused save leaves the existing file untouched and no temporary behind.
    let mut bad = float_graph();
    let out = bad.outputs()[0];
    bad.value_mut(out).ty.dtype = fqc_ir::DType::I32;
    assert!(matches!(
        save_file(&path, &bad),
        Err(ArtifactError::InvalidGraph(_))
    ));
    assert!(load_file(&path).unwrap() == float_graph().compact());
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("model.fqc")]);
    // A missing folder is an I/O error naming the path.
    let err = save_file(dir.join("no/such/dir/m.fqc"), &quant_graph()).unwrap_err();
    assert!(
        matches!(err, ArtifactError::Io { .. }) && err.to_string().contains("m.fqc"),
        "{err}"
    );
    let err = load_file(dir.join("absent.fqc")).unwrap_err();
    assert!(err.to_string().contains("absent.fqc"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncation_at_every_seventh_byte_is_an_error() {
    for g in graphs() {
        let bytes = save(&g);
        for k in (0..bytes.len()).step_by(7) {
            match load(&bytes[..k]) {
                Err(ArtifactError::Truncated(msg)) => assert!(!msg.is_empty()),
                other => panic!("{}: cut at {k}: {other:?}", g.name),
            }
        }
    }
}

#[test]
fn truncated_protobuf_with_a_valid_header_is_an_error() {
    let bytes = save(&quant_graph());
    let body = &bytes[HEADER_LEN..];
    for k in (1..body.len()).step_by(7) {
        // Re-framed so length and checksum agree: only the protobuf is cut short.
        let err = load(&frame(&body[..k])).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn body_without_end_marker_is_incomplete() {
    let mut p = body(&save(&quant_graph()));
    p.end = 0;
    let err = load(&reframe(&p)).unwrap_err();
    assert!(err.to_string().contains("incomplete"), "{err}");
    // Cutting the outputs off (a cut between fields protobuf alone would accept) too.
    let bytes = save(&quant_graph());
    let b = &bytes[HEADER_LEN..];
    let mut q = body(&bytes);
    q.outputs.clear();
    q.end = 0;
    let cut = q.encode_to_vec().len();
    assert!(load(&frame(&b[..cut])).is_err());
}

#[test]
fn wrong_magic_is_not_a_fqc_file() {
    let mut bytes = save(&quant_graph());
    bytes[1] = b'X';
    let err = load(&bytes).unwrap_err();
    assert!(matches!(err, ArtifactError::NotFqc));
    assert!(err.to_string().contains("not a .fqc file"), "{err}");
    assert!(matches!(
        load(b"ir_version: 8\n"),
        Err(ArtifactError::NotFqc)
    ));
}

#[test]
fn newer_version_is_named() {
    let mut bytes = save(&quant_graph());
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = load(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "this .fqc was written by a newer fqc (format {}, this fqc reads up to {})",
            FORMAT_VERSION + 1,
            FORMAT_VERSION
        )
    );
    // Even a newer file too short for this version's header is reported as newer.
    assert!(matches!(
        load(&bytes[..12]),
        Err(ArtifactError::NewerVersion { found, .. }) if found == FORMAT_VERSION + 1
    ));
    bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(load(&bytes), Err(ArtifactError::Corrupt(_))));
}

#[test]
fn every_flipped_body_byte_is_caught() {
    let bytes = save(&quant_graph());
    for i in HEADER_LEN..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(
            matches!(load(&b), Err(ArtifactError::Checksum { .. })),
            "byte {i}"
        );
    }
    // Flipping the stored checksum or length is caught too.
    for i in 12..HEADER_LEN {
        let mut b = bytes.clone();
        b[i] ^= 1;
        assert!(load(&b).is_err(), "header byte {i}");
    }
    let mut b = bytes.clone();
    b.push(0);
    assert!(matches!(load(&b), Err(ArtifactError::Corrupt(_))));
}

#[test]
fn mutated_bodies_with_valid_checksums_never_panic() {
    // Corruption the checksum cannot see (the file was rewritten consistently): every
    // byte of the body replaced by several values must give an error or a valid graph.
    let bytes = save(&quant_graph());
    let body = &bytes[HEADER_LEN..];
    let mut errors = 0;
    for i in 0..body.len() {
        for x in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut b = body.to_vec();
            b[i] = x;
            match load(&frame(&b)) {
                Ok(g) => fqc_ir::verify(&g).unwrap(),
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > body.len(), "{errors} errors");
}

/// A one-value graph: a constant of `dims` (elided payload) as the output.
fn const_graph(dims: Vec<i64>, payload: Option<Vec<u8>>) -> GraphProto {
    GraphProto {
        name: "huge".into(),
        values: vec![ValueProto {
            ty: Some(TypeProto {
                dtype: Some(DTypeProto {
                    kind: ElemKind::F32 as i32,
                    bits: 0,
                }),
                dims,
                scale: None,
            }),
            name: None,
            def: Some(Def::Const(ConstProto {
                digest: 0,
                payload,
                encoding: 0,
            })),
        }],
        outputs: vec![0],
        end: END_MARKER,
    }
}

#[test]
fn huge_declared_shapes_are_refused_before_allocating() {
    for dims in [
        vec![1 << 20, 1 << 20],
        vec![1 << 40, 1 << 40, 1 << 40],
        vec![i64::MAX, i64::MAX],
        vec![(1 << 28) + 1],
    ] {
        let err = load(&reframe(&const_graph(dims.clone(), Some(vec![])))).unwrap_err();
        assert!(matches!(err, ArtifactError::TooLarge(_)), "{dims:?}: {err}");
        assert!(err.to_string().contains("limit"), "{err}");
    }
    // At the per-tensor cap, only the exact payload length is accepted (no allocation).
    let err = load(&reframe(&const_graph(vec![1 << 28], Some(vec![0; 4])))).unwrap_err();
    assert!(
        err.to_string().contains("must be 1073741824 bytes"),
        "{err}"
    );
    // Many constants under the per-tensor cap together exceed the total cap.
    let mut p = const_graph(vec![1 << 28], None);
    let v = p.values[0].clone();
    p.values = vec![v; 5];
    let err = load(&reframe(&p)).unwrap_err();
    assert!(matches!(err, ArtifactError::TooLarge(_)), "{err}");
    // A negative dimension other than -1 (the batch) is corrupt.
    let err = load(&reframe(&const_graph(vec![-2], None))).unwrap_err();
    assert!(err.to_string().contains("invalid dimension -2"), "{err}");
}

#[test]
fn structural_corruption_is_a_clear_error() {
    let good = body(&save(&quant_graph()));
    let node_k = good
        .values
        .iter()
        .position(|v| matches!(v.def, Some(Def::Node(_))))
        .unwrap();
    let with_node = |f: &dyn Fn(&mut fqc_runtime::artifact::schema::NodeProto)| {
        let mut p = good.clone();
        let Some(Def::Node(n)) = &mut p.values[node_k].def else {
            unreachable!()
        };
        f(n);
        load(&reframe(&p)).unwrap_err().to_string()
    };
    let e = with_node(&|n| n.inputs[0] = 9999);
    assert!(e.contains("operand %9999 does not exist"), "{e}");
    let e = with_node(&|n| n.table_op = None);
    assert!(e.contains("missing op"), "{e}");
    let e = with_node(&|n| {
        for a in &mut n.table_op.as_mut().unwrap().attrs {
            if let Some(AttrValue::Dtype(d)) = &mut a.value {
                d.bits = 0;
            }
        }
    });
    assert!(e.contains("integer width 0"), "{e}");
    let e = with_node(&|n| n.table_op.as_mut().unwrap().name = "frob".into());
    assert!(e.contains("unknown op `frob`"), "{e}");
    let e = with_node(&|n| n.table_op.as_mut().unwrap().attrs.reverse());
    assert!(e.contains("expected attribute `dtype`"), "{e}");
    let e = with_node(&|n| n.table_op.as_mut().unwrap().attrs.pop().map_or((), |_| ()));
    assert!(e.contains("missing attribute"), "{e}");

    let mut p = good.clone();
    p.outputs.push(12345);
    let e = load(&reframe(&p)).unwrap_err().to_string();
    assert!(e.contains("graph output %12345 does not exist"), "{e}");

    let mut p = good.clone();
    p.values[0].def = None;
    let e = load(&reframe(&p)).unwrap_err().to_string();
    assert!(e.contains("value %0: has no definition"), "{e}");

    // A payload one byte short: plain ones name the exact length, the others are
    // reported as ending early (or, cut inside packed bits, as a bad length/padding).
    for plain in [true, false] {
        let mut p = good.clone();
        let c = p
            .values
            .iter_mut()
            .find_map(|v| match &mut v.def {
                Some(Def::Const(c))
                    if c.payload.as_ref().is_some_and(|b| b.len() > 4)
                        && (c.encoding == 0) == plain =>
                {
                    Some(c)
                }
                _ => None,
            })
            .unwrap();
        c.payload.as_mut().unwrap().pop();
        let e = load(&reframe(&p)).unwrap_err().to_string();
        assert!(
            e.contains("corrupt .fqc file: value %") && e.contains("payload"),
            "{e}"
        );
        if plain {
            assert!(e.contains("must be"), "{e}");
        }
    }
}

#[test]
fn semantically_broken_graph_names_the_node() {
    let mut p = body(&save(&quant_graph()));
    // Give the qconv node a result type that does not match its inferred one.
    let k = p
        .values
        .iter()
        .position(|v| matches!(&v.def, Some(Def::Node(n)) if n.name == "qconv"))
        .unwrap();
    p.values[k].ty.as_mut().unwrap().dims[1] = 9;
    let err = load(&reframe(&p)).unwrap_err();
    assert!(matches!(err, ArtifactError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("node `qconv` (qconv)"), "{err}");
    // A constant whose digest does not match its payload.
    let mut p = body(&save(&quant_graph()));
    for v in &mut p.values {
        if let Some(Def::Const(c)) = &mut v.def {
            c.digest ^= 1;
            break;
        }
    }
    let err = load(&reframe(&p)).unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
}

#[test]
fn unsaveable_graph_saves_without_panicking_and_fails_to_load() {
    let mut g = quant_graph();
    let (n, _) = g
        .nodes()
        .find(|(_, n)| matches!(n.op, Op::QConv { .. }))
        .unwrap();
    g.node_mut(n).inputs[0] = fqc_ir::Value(100_000);
    assert!(matches!(try_save(&g), Err(ArtifactError::InvalidGraph(_))));
    assert!(load(&save(&g)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(load(&bytes).is_err());
    }

    #[test]
    fn random_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Header valid, body random: an error, or (rarely) a graph that verifies.
        if let Ok(g) = load(&frame(&bytes)) {
            prop_assert!(fqc_ir::verify(&g).is_ok());
        }
    }
}

/// A real format-2 file (the bundled MNIST model as fqc wrote it before format 3) loads,
/// and is the same graph as the committed model, which was rewritten in format 3.
#[test]
fn a_format_2_file_written_by_fqc_still_loads() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let old = std::fs::read(root.join("tests/fixtures/mnist_cnn_w2a4.format2.fqc")).unwrap();
    assert_eq!(old[8..12], 2u32.to_le_bytes());
    let g = load(&old).expect("a format-2 artifact loads");
    let now = load_file(root.join("../examples/mnist/mnist_cnn_w2a4.fqc")).unwrap();
    assert!(
        g == now,
        "the format-2 and format-3 files hold different graphs"
    );
    assert_eq!(
        save(&g),
        std::fs::read(root.join("../examples/mnist/mnist_cnn_w2a4.fqc")).unwrap()
    );
}

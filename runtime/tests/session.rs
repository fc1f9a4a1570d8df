//! `Model` / `Session` on the MNIST CNN (ternary/a4): equal to the integer interpreter
//! bit for bit at every batch and thread count (one image: the channel-split arena),
//! arena reuse across batches, u8 input,
//! and one clear error for a wrong shape, a wrong type and a corrupt artifact.

mod mnist;

use fqc_ir::{Tensor, TensorData};
use fqc_runtime::{Model, RuntimeError};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn session_matches_interpreter_and_reuses_its_arena() {
    assert_send_sync::<Model>();
    let g = mnist::ternary_a4();
    let dir = mnist::scratch("session");
    let model = Model::load(mnist::save(&g, &dir)).expect("loads and compiles");
    assert!(model.macs_per_image() > 0);
    assert_eq!(model.input_item_shape(), &[1, 28, 28]);
    assert_eq!(model.output_item_len(), 10);
    let test = mnist::test_set();
    let mut s = model.session();
    // 64, then smaller batches in the same arena (stale data must not leak), then 64.
    let mut bytes_at_64 = 0;
    for (i, (a, b)) in [(0, 64), (64, 65), (100, 117), (200, 264)]
        .into_iter()
        .enumerate()
    {
        let x = test.batch(a, b);
        let want = fqc_ir::interp::run(&g, std::slice::from_ref(&x)).unwrap();
        assert_eq!(s.run(&x).unwrap(), want[0], "images {a}..{b}");
        if i == 0 {
            bytes_at_64 = s.arena_bytes();
        }
        assert_eq!(
            s.arena_bytes(),
            bytes_at_64,
            "arena regrown at batch {}",
            b - a
        );
    }
    // Threads: uneven split, more threads than images, from two threads at once.
    let x = test.batch(300, 333);
    let want = fqc_ir::interp::run(&g, std::slice::from_ref(&x)).unwrap();
    for t in [2, 3, 64] {
        let mut st = model.session().threads(t);
        assert_eq!(st.run(&x).unwrap(), want[0], "{t} threads");
    }
    // One image, several threads: the session's channel-split arena (twice, so it is
    // reused). This CNN's layers are below the split threshold, so they run whole;
    // the split itself is checked by fqc-codegen's proptests, which split every layer.
    let x1 = test.batch(400, 401);
    let want1 = fqc_ir::interp::run(&g, std::slice::from_ref(&x1)).unwrap();
    for t in [2, 3] {
        let mut st = model.session().threads(t);
        for _ in 0..2 {
            assert_eq!(st.run(&x1).unwrap(), want1[0], "1 image, {t} threads");
        }
    }
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| assert_eq!(model.session().run(&x).unwrap(), want[0]));
        }
    });
    // u8 pixels give the same logits as the same pixels as f32.
    let px = fqc_dataset::LabelledSet::load_npz(
        &mnist::root().join("examples/mnist/mnist10k.npz"),
        "test",
    )
    .unwrap();
    let TensorData::U8(raw) = &px.x.data else {
        panic!("MNIST pixels are u8")
    };
    let xu = Tensor {
        shape: vec![33, 1, 28, 28],
        data: TensorData::U8(raw[300 * 784..333 * 784].to_vec()),
    };
    assert_eq!(s.run_u8(&xu).unwrap(), want[0]);
    std::fs::remove_dir_all(dir).ok();
}

fn input_error(r: Result<Tensor, RuntimeError>, words: &[&str]) {
    let e = r.expect_err("must fail");
    assert!(matches!(e, RuntimeError::Input(_)), "{e:?}");
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "`{w}` missing from: {msg}");
    }
}

#[test]
fn bad_input_is_one_clear_error() {
    let g = mnist::ternary_a4();
    let model = Model::from_graph(g).unwrap();
    let mut s = model.session();
    let f32s = |shape: Vec<usize>| Tensor {
        data: TensorData::F32(vec![0.0; shape.iter().product()]),
        shape,
    };
    // Wrong shape: channels, spatial size, rank, empty batch, data shorter than shape.
    for shape in [
        vec![2, 3, 28, 28],
        vec![2, 1, 32, 32],
        vec![2, 784],
        vec![0, 1, 28, 28],
    ] {
        input_error(
            s.run(&f32s(shape.clone())),
            &["[N,1,28,28]", &format!("{shape:?}")],
        );
    }
    let short = Tensor {
        shape: vec![2, 1, 28, 28],
        data: TensorData::F32(vec![0.0; 784]),
    };
    input_error(s.run(&short), &["784 elements"]);
    // Wrong type: u8 to `run`, f32 to `run_u8`, i32 to either.
    let u8s = Tensor {
        shape: vec![1, 1, 28, 28],
        data: TensorData::U8(vec![0; 784]),
    };
    input_error(s.run(&u8s), &["must be f32", "got u8"]);
    input_error(
        s.run_u8(&f32s(vec![1, 1, 28, 28])),
        &["must be u8", "got f32"],
    );
    let i32s = Tensor {
        shape: vec![1, 1, 28, 28],
        data: TensorData::I32(vec![0; 784]),
    };
    input_error(s.run(&i32s), &["got i32"]);
    // The session still works after the errors.
    assert_eq!(s.run(&f32s(vec![1, 1, 28, 28])).unwrap().shape, vec![1, 10]);
}

#[test]
fn corrupt_or_foreign_artifact_is_one_clear_error() {
    let g = mnist::ternary_a4();
    let bytes = fqc_runtime::save(&g);
    assert!(Model::from_bytes(&bytes).is_ok());
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x5a;
    let e = Model::from_bytes(&flipped).unwrap_err();
    assert!(matches!(e, RuntimeError::Artifact(_)), "{e:?}");
    assert!(e.to_string().contains("corrupt"), "{e}");
    let e = Model::from_bytes(&bytes[..bytes.len() - 10]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = Model::from_bytes(b"\x08\x01 onnx protobuf").unwrap_err();
    assert!(e.to_string().contains("not a .fqc"), "{e}");
    let e = Model::load("/nonexistent/model.fqc").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.fqc"), "{e}");
}

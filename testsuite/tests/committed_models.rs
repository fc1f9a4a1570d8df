//! The accuracy figures README and the reports quote for the committed models, held
//! exactly: each committed `.fqc` on its committed test split, on the JIT and on the
//! integer interpreter, and each float model on the float interpreter, must give the
//! stated count of correct images — no more, no fewer. Integer inference is exact and
//! the float interpreter is deterministic, so a change of even one image is a change of
//! behaviour that must be explained (and these counts updated with the reports).

use std::path::Path;

use fqc_dataset::LabelledSet;
use fqc_ir::Graph;
use fqc_testsuite::repo_root;

/// (model, data set, split, correct, images): the committed figures.
const COMMITTED: &[(&str, &str, &str, usize, usize)] = &[
    // README: 98.85 % (the MNIST CNN, every layer ternary, 4-bit activations).
    (
        "examples/mnist/mnist_cnn_w2a4.fqc",
        "examples/mnist/mnist10k.npz",
        "test",
        1977,
        2000,
    ),
    // README and reports/finetune.md: 92.66 % (conv1 and fc2 at 8-bit weights).
    (
        "examples/fashion/fashion_cnn_w2a4.fqc",
        "examples/fashion/fashion_test.npz",
        "test",
        9266,
        10000,
    ),
    // reports/finetune_all_ternary.md: 91.56 % (every layer ternary).
    (
        "examples/fashion/fashion_cnn_w2a4_all_ternary.fqc",
        "examples/fashion/fashion_test.npz",
        "test",
        9156,
        10000,
    ),
    // 92.49 % (only conv1 at 8-bit weights).
    (
        "examples/fashion/fashion_cnn_w2a4_c1w8.fqc",
        "examples/fashion/fashion_test.npz",
        "test",
        9249,
        10000,
    ),
    // The float models: 98.65 %, 92.84 %, 89.30 %.
    (
        "examples/mnist/mnist_cnn.onnx",
        "examples/mnist/mnist10k.npz",
        "test",
        1973,
        2000,
    ),
    (
        "examples/fashion/fashion_cnn.onnx",
        "examples/fashion/fashion_test.npz",
        "test",
        9284,
        10000,
    ),
    (
        "examples/fashion/fashion_small_cnn.onnx",
        "examples/fashion/fashion_test.npz",
        "test",
        8930,
        10000,
    ),
];

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |b, (j, x)| if *x > row[b] { j } else { b })
}

/// Correct images of `set` when each batch's logits come from `run`.
fn correct(set: &LabelledSet, mut run: impl FnMut(fqc_ir::Tensor) -> Vec<f32>) -> usize {
    let mut hits = 0;
    for start in (0..set.len()).step_by(500) {
        let end = (start + 500).min(set.len());
        let logits = run(set.batch(start, end));
        let per = logits.len() / (end - start);
        hits += logits
            .chunks(per)
            .zip(&set.y[start..end])
            .filter(|(row, &y)| argmax(row) as i64 == y)
            .count();
    }
    hits
}

fn interp(g: &Graph) -> impl FnMut(fqc_ir::Tensor) -> Vec<f32> + '_ {
    move |x| {
        let opts = fqc_ir::interp::RunOptions { threads: 2 };
        let out = fqc_ir::interp::run_with(g, &[x], &opts).expect("the interpreter runs");
        out[0].as_f32().expect("f32 logits").to_vec()
    }
}

#[test]
fn committed_models_give_their_stated_accuracy() {
    for &(model, data, split, want, images) in COMMITTED {
        let root = repo_root();
        let set = LabelledSet::open(&root.join(data), split).expect("the committed data set");
        assert_eq!(set.len(), images, "{data} split {split}");
        let path = root.join(model);
        if path.extension().is_some_and(|e| e == "fqc") {
            let g = fqc_runtime::artifact::load_file(&path).expect("the committed artifact loads");
            let m = fqc_runtime::Model::from_graph(g.clone()).expect("the JIT compiles it");
            let mut s = m.session();
            let jit = correct(&set, |x| {
                s.run(&x)
                    .expect("the JIT runs")
                    .as_f32()
                    .expect("f32")
                    .to_vec()
            });
            assert_eq!(
                jit, want,
                "{model} on the JIT: {jit}/{images}, stated {want}"
            );
            let int = correct(&set, interp(&g));
            assert_eq!(int, want, "{model} on the interpreter: {int}/{images}");
        } else {
            let g = fqc_onnx::import_file(Path::new(&path)).expect("the committed model imports");
            let fp = correct(&set, interp(&g));
            assert_eq!(fp, want, "{model}: {fp}/{images}, stated {want}");
        }
        println!("{model}: {want}/{images}");
    }
}

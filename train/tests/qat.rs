//! The built-in fine-tuner: the STE quantizer against the IR's quantize/dequantize, the
//! trained network against the stage's fake-quant graph, a short QAT run whose loss
//! falls, and biases written back through the handle reaching later stages.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use fqc_dataset::LabelledSet;
use fqc_ir::{DType, Graph, Op, Scale, Shape, TensorType, F32};
use fqc_passes::schedule::{compile_gradual, FineTune, Schedule, StageHandle, StageInfo};
use fqc_passes::{PassContext, PipelineOptions, WeightBits};
use fqc_train::batchnorm::Mode;
use fqc_train::quant::{fake_quant, round_ste};
use fqc_train::{Net, QatFineTune, TrainConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn mnist() -> (Graph, LabelledSet) {
    let g = fqc_onnx::import_file(&root().join("examples/mnist/mnist_cnn.onnx")).unwrap();
    let set = LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "train").unwrap();
    (g, set)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `quantize` → `dequantize` of an f32[n] input in the IR interpreter.
fn ir_fake_quant(xs: &[f32], dtype: DType, scale: f32) -> Vec<f32> {
    let mut g = Graph::new("q");
    let n = xs.len() as u64;
    let x = g.add_input("x", TensorType::f32(Shape::fixed(&[n])));
    let q = g.add_node(
        Op::Quantize {
            dtype,
            scale: F32(scale),
            offset: F32(0.0),
        },
        vec![x],
        TensorType {
            dtype,
            shape: Shape::fixed(&[n]),
            scale: Some(Scale::Tensor(F32(scale))),
        },
        "q",
        None,
    );
    let d = g.add_node(
        Op::Dequantize,
        vec![q],
        TensorType::f32(Shape::fixed(&[n])),
        "dq",
        None,
    );
    g.set_outputs(vec![d]);
    let input = fqc_ir::Tensor::f32(vec![xs.len()], xs.to_vec()).unwrap();
    let out = fqc_ir::run(&g, &[input]).unwrap();
    out[0].as_f32().unwrap().to_vec()
}

#[test]
fn ste_quantizer_matches_the_ir_and_passes_gradients() {
    let dev = Device::flex();
    // Ties (half to even), values beyond both ends, negatives.
    let xs: Vec<f32> = vec![
        -3.0, -0.75, -0.25, 0.0, 0.25, 0.5, 0.75, 1.25, 1.75, 2.25, 3.6, 3.75, 3.9, 100.0, 0.1, 2.0,
    ];
    for (dtype, scale, qmin, qmax) in [
        (DType::int(false, 4).unwrap(), 0.5f32, 0.0, 15.0),
        (DType::int(true, 3).unwrap(), 0.5f32, -3.0, 3.0),
        (DType::int(false, 2).unwrap(), 0.25f32, 0.0, 3.0),
    ] {
        let want = ir_fake_quant(&xs, dtype, scale);
        let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &dev);
        let s = Tensor::<1>::from_data(TensorData::new(vec![scale; xs.len()], [xs.len()]), &dev);
        let got = to_vec(fake_quant(x, s, qmin, qmax));
        assert_eq!(got, want, "{dtype} scale {scale}");
    }
    // Half to even, as the IR rounds.
    let t = Tensor::<1>::from_data(
        TensorData::new(vec![0.5f32, 1.5, 2.5, -0.5, -1.5], [5]),
        &dev,
    );
    assert_eq!(to_vec(round_ste(t)), vec![0.0, 2.0, 2.0, -0.0, -2.0]);

    // Gradients: to the input through the STE (inside the range), and to the log-scale.
    let ad = dev.autodiff();
    let x = Tensor::<1>::from_data(TensorData::new(vec![0.3f32, 1.1, 1.9, 9.0], [4]), &ad)
        .require_grad();
    let s = Tensor::<1>::from_data(TensorData::new(vec![2.0f32.ln()], [1]), &ad).require_grad();
    let scale = s.clone().exp().div_scalar(3.0).expand([4]);
    let y = fake_quant(x.clone(), scale, 0.0, 3.0);
    let grads = (y * Tensor::from_data(TensorData::new(vec![1.0f32, -2.0, 3.0, 1.0], [4]), &ad))
        .sum()
        .backward();
    let gx = to_vec(x.grad(&grads).unwrap());
    assert_eq!(gx, vec![1.0, -2.0, 3.0, 0.0], "STE inside, clipped outside");
    let gs = to_vec(s.grad(&grads).unwrap());
    assert!(
        gs[0].abs() > 1e-4 && gs[0].is_finite(),
        "gradient to s: {gs:?}"
    );
}

/// A hook that checks the trainer's network against the stage's fake-quant graph in the
/// IR interpreter, then changes nothing.
#[derive(Debug)]
struct CheckNet {
    x: fqc_ir::Tensor,
    agree: Option<f64>,
    /// Median and largest |logit difference| between the trainer's net and the IR.
    median_diff: f32,
    max_diff: f32,
}

impl FineTune for CheckNet {
    fn after_stage(&mut self, _: &StageInfo, h: &mut StageHandle<'_>) -> fqc_passes::Result<()> {
        let dev = Device::flex();
        let (net, p) = Net::stage(h, &dev).unwrap();
        let params = net.tensors(&p);
        let x = burn_batch(&self.x, &dev);
        let ours = to_vec(net.forward(Some(&params), x).unwrap());
        let ir = fqc_ir::run(h.fake_quant_graph(), std::slice::from_ref(&self.x)).unwrap();
        let ir = ir[0].as_f32().unwrap().to_vec();
        assert_eq!(ours.len(), ir.len());
        let n = self.x.shape[0];
        let c = ours.len() / n;
        let same = (0..n)
            .filter(|&i| argmax(&ours[i * c..(i + 1) * c]) == argmax(&ir[i * c..(i + 1) * c]))
            .count();
        self.agree = Some(same as f64 / n as f64);
        let mut diffs: Vec<f32> = ours.iter().zip(&ir).map(|(a, b)| (a - b).abs()).collect();
        diffs.sort_by(f32::total_cmp);
        self.median_diff = diffs[diffs.len() / 2];
        self.max_diff = diffs[diffs.len() - 1];
        eprintln!(
            "trainer net vs IR: median |diff| {:e}, max {:e}",
            self.median_diff, self.max_diff
        );
        Ok(())
    }
}

#[test]
fn trained_network_is_the_fake_quant_graph() {
    let (g, set) = mnist();
    let mut cx = PassContext {
        calib_inputs: vec![set.batch(0, 64)],
        ..PassContext::default()
    };
    let mut hook = CheckNet {
        x: set.batch(0, 128),
        agree: None,
        median_diff: f32::INFINITY,
        max_diff: f32::INFINITY,
    };
    let s = Schedule::one_shot(WeightBits::Ternary, 4);
    compile_gradual(&g, &s, &mut cx, &mut hook, &PipelineOptions::default()).unwrap();
    let agree = hook.agree.unwrap();
    assert!(agree >= 0.99, "argmax agreement {agree}");
    // Measured here: median 6e-8, largest 7e-7 (f32 rounding of two summation orders).
    assert!(
        hook.median_diff < 1e-5,
        "median |logit diff| {}",
        hook.median_diff
    );
    assert!(
        hook.max_diff < 1e-4,
        "largest |logit diff| {}",
        hook.max_diff
    );
}

#[test]
fn short_qat_run_lowers_the_loss_and_is_deterministic() {
    let (g, set) = mnist();
    let train = fqc_train::trainer::first(&set, 256);
    let cfg = TrainConfig {
        epochs_per_stage: vec![4],
        batch_size: 32,
        lr: vec![1e-3],
        patience: None,
        progress: false,
        print_stages: false,
        ..TrainConfig::default()
    };
    let run = |cfg: &TrainConfig| {
        let val = fqc_train::trainer::first(
            &LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "test").unwrap(),
            200,
        );
        let mut hook = QatFineTune::new(train.clone(), Some(val), cfg.clone()).unwrap();
        let mut cx = PassContext {
            calib_inputs: vec![train.batch(0, 64)],
            ..PassContext::default()
        };
        let s = Schedule::one_shot(WeightBits::Ternary, 2);
        let out = compile_gradual(&g, &s, &mut cx, &mut hook, &PipelineOptions::default()).unwrap();
        assert!(out.stages[0].fine_tuned);
        assert!(fqc_passes::is_integer_only(&out.graph));
        hook.reports
    };
    let reports = run(&cfg);
    let losses = &reports[0].epoch_losses;
    assert_eq!(losses.len(), 4);
    assert!(
        losses[3] < losses[0] * 0.9,
        "training loss should fall: {losses:?}"
    );
    // Same seed, same run.
    let again = run(&cfg);
    assert_eq!(again[0].epoch_losses, reports[0].epoch_losses);
    // Augmentation reaches the batches (other losses) and is seeded as well.
    let augmented = TrainConfig {
        augment: fqc_dataset::Augment {
            crop_pad: 2,
            hflip: true,
        },
        ..cfg.clone()
    };
    let a = run(&augmented);
    assert_ne!(a[0].epoch_losses, reports[0].epoch_losses);
    assert_eq!(run(&augmented)[0].epoch_losses, a[0].epoch_losses);
}

/// A hook that shifts every layer's bias by 0.25 at the first stage and records what the
/// later stage's float master holds.
#[derive(Debug, Default)]
struct ShiftBias {
    seen: Vec<Vec<f32>>,
}

impl FineTune for ShiftBias {
    fn after_stage(&mut self, st: &StageInfo, h: &mut StageHandle<'_>) -> fqc_passes::Result<()> {
        let names: Vec<String> = h.layers().iter().map(|l| l.name.clone()).collect();
        if st.index == 0 {
            for n in &names {
                let b: Vec<f32> = h.bias(n).unwrap().iter().map(|b| b + 0.25).collect();
                h.set_bias(n, b)?;
            }
            assert!(
                h.set_bias(&names[0], vec![0.0]).is_err(),
                "wrong length refused"
            );
        } else {
            self.seen = names.iter().map(|n| h.bias(n).unwrap()).collect();
        }
        Ok(())
    }
}

#[test]
fn biases_set_by_a_hook_reach_later_stages() {
    let (g, set) = mnist();
    let mut cx = PassContext {
        calib_inputs: vec![set.batch(0, 64)],
        ..PassContext::default()
    };
    // The biases before: a pass-through run.
    let mut first = ShiftBias::default();
    let s = Schedule::parse("w8a8,w2a4").unwrap();
    let out = compile_gradual(&g, &s, &mut cx, &mut first, &PipelineOptions::default()).unwrap();
    let mut cx2 = PassContext {
        calib_inputs: vec![set.batch(0, 64)],
        ..PassContext::default()
    };
    let base = compile_gradual(
        &g,
        &Schedule::one_shot(WeightBits::Ternary, 4),
        &mut cx2,
        &mut fqc_passes::schedule::NoFineTune,
        &PipelineOptions::default(),
    )
    .unwrap();
    assert!(out.stages[0].fine_tuned);
    assert_eq!(first.seen.len(), 4);
    // The float master of the result carries the shifted biases.
    let conv1 = out
        .float
        .nodes()
        .find(|(_, d)| matches!(d.op, Op::Conv { .. }))
        .map(|(_, d)| d.inputs[2])
        .unwrap();
    let conv1_base = base
        .float
        .nodes()
        .find(|(_, d)| matches!(d.op, Op::Conv { .. }))
        .map(|(_, d)| d.inputs[2])
        .unwrap();
    let a = out.float.const_tensor(conv1).unwrap().as_f32().unwrap();
    let b = base
        .float
        .const_tensor(conv1_base)
        .unwrap()
        .as_f32()
        .unwrap();
    for (x, y) in a.iter().zip(b) {
        assert!((x - y - 0.25).abs() < 1e-6);
    }
    assert!((first.seen[0][0] - a[0]).abs() < 1e-6);
    assert!(fqc_passes::is_integer_only(&out.graph));
}

/// Checks BatchNorm re-training on the stage's network (`fqc_train::batchnorm`): adding
/// the BatchNorms keeps the function, training mode on the batch the statistics came
/// from computes the same, and folding arbitrary BatchNorm parameters (negative `γ`
/// included) back into the layers computes evaluation mode's function.
#[derive(Debug)]
struct CheckBatchNorm {
    x: fqc_ir::Tensor,
    checked: bool,
}

/// The index of the largest value (the first of equals).
fn argmax(r: &[f32]) -> usize {
    r.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |m, (i, &v)| if v > m.1 { (i, v) } else { m },
        )
        .0
}

fn burn_batch(x: &fqc_ir::Tensor, dev: &Device) -> Tensor<4> {
    let s = &x.shape;
    Tensor::<4>::from_data(
        TensorData::new(x.as_f32().unwrap().to_vec(), [s[0], s[1], s[2], s[3]]),
        dev,
    )
}

/// Fraction of logits farther apart than `tol`, and the fraction of rows (10 logits)
/// whose argmax differs.
fn disagreement(a: &[f32], b: &[f32], tol: f32) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let far = a
        .iter()
        .zip(b)
        .filter(|(x, y)| (*x - *y).abs() > tol)
        .count();
    let rows = a.len() / 10;
    let flips = (0..rows)
        .filter(|&i| argmax(&a[i * 10..][..10]) != argmax(&b[i * 10..][..10]))
        .count();
    (far as f64 / a.len() as f64, flips as f64 / rows as f64)
}

impl FineTune for CheckBatchNorm {
    fn after_stage(&mut self, _: &StageInfo, h: &mut StageHandle<'_>) -> fqc_passes::Result<()> {
        let dev = Device::flex();
        let x = burn_batch(&self.x, &dev);
        let (plain, p0) = Net::stage(h, &dev).unwrap();
        // The MNIST CNN's two Conv → BatchNormalization pairs.
        assert_eq!(plain.layers.iter().filter(|l| l.batchnorm).count(), 2);
        let before = to_vec(plain.forward(Some(&plain.tensors(&p0)), x.clone()).unwrap());
        let (mut net, mut p) = Net::stage(h, &dev).unwrap();
        assert_eq!(
            net.train_batchnorm(&mut p, std::slice::from_ref(&x))
                .unwrap(),
            2
        );
        let eval = to_vec(net.forward(Some(&net.tensors(&p)), x.clone()).unwrap());
        let (far, flips) = disagreement(&before, &eval, 1e-3);
        assert!(far < 0.01 && flips == 0.0, "BatchNorm added: {far} {flips}");
        let mut mode = Mode::Train(Vec::new());
        let train = to_vec(
            net.forward_mode(Some(&net.tensors(&p)), x.clone(), &mut mode)
                .unwrap(),
        );
        let (far, flips) = disagreement(&train, &eval, 1e-3);
        assert!(far < 0.01 && flips == 0.0, "training mode: {far} {flips}");
        let Mode::Train(stats) = mode else {
            panic!("mode changed")
        };
        assert_eq!(stats.len(), 2);
        // Arbitrary BatchNorm parameters, a third of the γ negative.
        for (li, bn) in net.batchnorms() {
            let b = net.layers[li].b.unwrap();
            for c in 0..p.values[bn.gamma].len() {
                let f = c as f32;
                p.values[bn.gamma][c] *= if c % 3 == 0 { -0.7 } else { 1.3 };
                p.values[bn.mean][c] += 0.05 * (f % 5.0);
                p.values[bn.var][c] *= 1.0 + 0.1 * (f % 4.0);
                p.values[b][c] += 0.02 * (f % 7.0) - 0.05;
            }
        }
        let eval = to_vec(net.forward(Some(&net.tensors(&p)), x.clone()).unwrap());
        let folded = net.folded(&p);
        let after = to_vec(plain.forward(Some(&plain.tensors(&folded)), x).unwrap());
        let (far, flips) = disagreement(&eval, &after, 1e-3);
        assert!(far < 0.01 && flips <= 0.01, "folded: {far} {flips}");
        let (moved, _) = disagreement(&before, &eval, 1e-3);
        assert!(moved > 0.5, "the parameters changed the network ({moved})");
        self.checked = true;
        Ok(())
    }
}

#[test]
fn batchnorm_is_added_without_change_and_folds_back_exactly() {
    let (g, set) = mnist();
    let mut cx = PassContext {
        calib_inputs: vec![set.batch(0, 64)],
        ..PassContext::default()
    };
    let mut hook = CheckBatchNorm {
        x: set.batch(0, 128),
        checked: false,
    };
    let s = Schedule::parse("w4a6").unwrap();
    compile_gradual(&g, &s, &mut cx, &mut hook, &PipelineOptions::default()).unwrap();
    assert!(hook.checked);
}

#[test]
fn batchnorm_is_trained_until_the_first_ternary_stage() {
    let (g, set) = mnist();
    let train = fqc_train::trainer::first(&set, 256);
    let run = |train_batchnorm: bool| {
        let cfg = TrainConfig {
            epochs_per_stage: vec![1],
            batch_size: 64,
            train_batchnorm,
            progress: false,
            print_stages: false,
            ..TrainConfig::default()
        };
        let val = fqc_train::trainer::first(&train, 64);
        let mut hook = QatFineTune::new(train.clone(), Some(val), cfg).unwrap();
        let mut cx = PassContext {
            calib_inputs: vec![train.batch(0, 64)],
            ..PassContext::default()
        };
        let s = Schedule::parse("w8a8,w4a4,w2a4,w8a8").unwrap();
        let out = compile_gradual(&g, &s, &mut cx, &mut hook, &PipelineOptions::default()).unwrap();
        assert!(fqc_passes::is_integer_only(&out.graph));
        let layers = &out.stages[0].layers;
        assert_eq!(layers.iter().filter(|l| l.batchnorm).count(), 2);
        hook.reports
            .iter()
            .map(|r| r.batchnorms)
            .collect::<Vec<_>>()
    };
    // Folded for good from the first ternary stage on, even when bits rise again.
    assert_eq!(run(true), [2, 2, 0, 0]);
    assert_eq!(run(false), [0, 0, 0, 0]);
}

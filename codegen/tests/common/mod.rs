//! Graph builders and the JIT-vs-interpreter comparison shared by the tests.
#![allow(dead_code)]

use fqc_codegen::{CompileOptions, ConvForm};
use fqc_ir::{DType, Dim, Graph, Op, Shape, Tensor, TensorData, TensorType, Value, F32};

/// A tiny deterministic generator (tests draw sizes from proptest, data from this).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

pub fn node(g: &mut Graph, op: Op, inputs: Vec<Value>, name: &str) -> Value {
    let tys: Vec<TensorType> = inputs.iter().map(|&v| g.ty(v).clone()).collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    let ty = fqc_ir::infer::infer(&op, &refs).expect("test graph type-checks");
    g.add_node(op, inputs, ty, name, None)
}

pub fn konst(g: &mut Graph, dtype: DType, shape: &[usize], data: TensorData) -> Value {
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let ty = TensorType::new(dtype, Shape::fixed(&dims));
    let t = Tensor {
        shape: shape.to_vec(),
        data,
    };
    g.add_const(None, ty, t)
}

/// Integer values in `dtype`'s storage.
pub fn store(dtype: DType, v: Vec<i64>) -> TensorData {
    match dtype {
        DType::Int { signed: false, .. } => {
            TensorData::U8(v.into_iter().map(|x| x as u8).collect())
        }
        DType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
        _ => TensorData::I8(v.into_iter().map(|x| x as i8).collect()),
    }
}

/// A graph input `[N, dims..]` quantized to `dtype` with scale 1 (so random inputs in
/// and beyond the range exercise rounding and clamping).
pub fn quantized_input(g: &mut Graph, name: &str, dims: &[usize], dtype: DType) -> Value {
    let mut shape = vec![Dim::Batch];
    shape.extend(dims.iter().map(|&d| Dim::Fixed(d as u64)));
    let x = g.add_input(name, TensorType::f32(Shape(shape)));
    let q = Op::Quantize {
        dtype,
        scale: F32(1.0),
        offset: F32(0.0),
    };
    node(g, q, vec![x], &format!("{name}/quantize"))
}

/// Random f32 input `[n, dims..]` around the range of `dtype` (incl. halves).
pub fn random_input(rng: &mut Lcg, n: usize, dims: &[usize], dtype: DType) -> Tensor {
    let (lo, hi) = dtype.quant_range().expect("low-bit");
    let numel = n * dims.iter().product::<usize>();
    let data = (0..numel)
        .map(|_| rng.range(2 * lo - 3, 2 * hi + 3) as f32 * 0.5)
        .collect();
    let mut shape = vec![n];
    shape.extend(dims);
    Tensor::f32(shape, data).expect("shape")
}

/// Every convolution form the tests run: the automatic choice, then each form forced.
pub const FORMS: [Option<ConvForm>; 5] = [
    None,
    Some(ConvForm::NativeA),
    Some(ConvForm::NativeB),
    Some(ConvForm::Dense),
    Some(ConvForm::Ternary),
];

/// Runs `g` with the interpreter and the JIT compiled with every form of [`FORMS`];
/// all must succeed with equal outputs. On an AVX2 machine a forced native form must
/// really be used for every convolution.
pub fn check_same(g: &Graph, inputs: &[Tensor]) {
    let want = fqc_ir::interp::run(g, inputs).expect("interpreter runs");
    let avx2 = is_avx2();
    for force in FORMS {
        let opts = CompileOptions {
            force_form: force,
            ..CompileOptions::default()
        };
        let jit = fqc_codegen::compile_with(g, &opts).expect("JIT compiles");
        if avx2 && matches!(force, Some(ConvForm::NativeA | ConvForm::NativeB)) {
            for (name, form) in jit.kernel_forms() {
                let conv = name.contains("conv") || name.contains("gemm");
                assert!(!conv || form.starts_with("native"), "{name}: {form}");
                if force == Some(ConvForm::NativeB) && conv {
                    assert!(form.starts_with("native-b"), "{name}: {form}");
                }
            }
        }
        // Whole steps on one thread, then output channels split between 2 and 3
        // threads (each must give the same bytes).
        for threads in [1, 2, 3] {
            let mut arena = fqc_codegen::Arena::new();
            // Every layer split, however small.
            arena
                .split_channels_from(threads, 0)
                .expect("helper threads start");
            let got = jit.run_in(&mut arena, inputs).expect("JIT runs");
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.shape, b.shape, "output {i} shape ({force:?})");
                assert!(
                    a.data == b.data,
                    "output {i} differs ({force:?}, {threads} threads):\n jit {:?}\n int {:?}",
                    a.data,
                    b.data
                );
            }
        }
    }
}

/// Whether this machine can run the native kernel.
pub fn is_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A random low-bit dtype: unsigned or signed, `bits` in 2..=8.
pub fn int_dtype(signed: bool, bits: u8) -> DType {
    DType::int(signed, bits).expect("2..=8 bits")
}

/// Median wall time of `reps` calls of `f` in µs, after one untimed call (for the
/// timing examples, which include this module; never used as a timed assertion).
pub fn median_us(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = std::time::Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

/// Random thresholds for `c` channels of `dtype`, around `±span`, and each channel's
/// direction: for one call in two unsorted random values, else those of an affine map
/// per channel — `ceil(o ± (k + 1/2)·q)` for a random real step `q` and offset `o`, as
/// `integerize` makes them — which the native epilogue may compute by its affine form.
pub fn thresholds(rng: &mut Lcg, c: usize, dtype: DType, span: i64) -> (Vec<i64>, Vec<i64>) {
    let (lo, hi) = dtype.quant_range().unwrap();
    let l = (hi - lo) as usize;
    let d: Vec<i64> = (0..c).map(|_| rng.range(0, 1)).collect();
    if rng.range(0, 1) == 0 {
        let t = (0..c * l).map(|_| rng.range(-span, span)).collect();
        return (t, d);
    }
    let mut t = Vec::with_capacity(c * l);
    for &desc in &d {
        // q in 1/16 steps, up to about twice the span over the levels.
        let q = rng.range(16, (32 * span / l as i64).max(17)) as f64 / 16.0;
        let o = rng.range(-span, span) as f64;
        let sign = if desc == 1 { -1.0 } else { 1.0 };
        t.extend((0..l).map(|k| (o + sign * (k as f64 + 0.5) * q).ceil() as i64));
    }
    (t, d)
}

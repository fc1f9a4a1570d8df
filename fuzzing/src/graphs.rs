//! Integer-only graphs built from fuzzer bytes, of the kind `integerize` produces and
//! the JIT compiles: quantized inputs, then a few layers drawn from `qconv` (dense or
//! ternary weights, any window, groups, depthwise) and `qgemm` each followed by a
//! `requantize`, max and sum pools, residual `scaled_add`s, global pools, `flatten`,
//! and a `dequantize` at the output. Shapes are drawn so every op type-checks; weights,
//! thresholds and inputs come from a seeded generator (the bytes choose the seed), so a
//! few bytes describe a whole graph and its input.

use arbitrary::{Result, Unstructured};
use fqc_ir::{DType, Dim, Graph, Op, Shape, Tensor, TensorData, TensorType, Value, Window, F32};

/// A small deterministic generator for weights, thresholds and inputs.
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
}

/// A generated graph and an input batch for it.
#[derive(Debug)]
pub struct Case {
    pub graph: Graph,
    pub inputs: Vec<Tensor>,
}

struct Builder<'a, 'b> {
    u: &'a mut Unstructured<'b>,
    rng: Lcg,
    g: Graph,
    /// Low-bit values available as layer inputs: value, and whether it is 4-D.
    acts: Vec<Value>,
    outputs: Vec<Value>,
    count: usize,
}

fn int_dtype(signed: bool, bits: u8) -> DType {
    DType::int(signed, bits).unwrap_or(DType::Int {
        signed: false,
        bits: 8,
    })
}

fn store(dtype: DType, v: Vec<i64>) -> TensorData {
    match dtype {
        DType::Int { signed: false, .. } => {
            TensorData::U8(v.into_iter().map(|x| x as u8).collect())
        }
        DType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
        DType::F32 => TensorData::F32(v.into_iter().map(|x| x as f32 / 16.0).collect()),
        _ => TensorData::I8(v.into_iter().map(|x| x as i8).collect()),
    }
}

impl Builder<'_, '_> {
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}{}", self.count)
    }

    /// Adds `op` if it type-checks.
    fn node(&mut self, op: Op, inputs: Vec<Value>, what: &str) -> Option<Value> {
        let tys: Vec<TensorType> = inputs.iter().map(|&v| self.g.ty(v).clone()).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let ty = fqc_ir::infer::infer(&op, &refs).ok()?;
        let name = self.name(what);
        Some(self.g.add_node(op, inputs, ty, &name, None))
    }

    fn konst(&mut self, dtype: DType, shape: &[usize], data: TensorData) -> Value {
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let ty = TensorType::new(dtype, Shape::fixed(&dims));
        self.g.add_const(
            None,
            ty,
            Tensor {
                shape: shape.to_vec(),
                data,
            },
        )
    }

    fn low_bit(&mut self) -> Result<DType> {
        Ok(int_dtype(
            self.u.arbitrary()?,
            self.u.int_in_range(2u8..=8)?,
        ))
    }

    fn dims(&self, v: Value) -> Vec<u64> {
        self.g.ty(v).shape.0.iter().map(|d| d.resolve(1)).collect()
    }

    /// `requantize` of the i32 `acc` to a random low-bit type: thresholds unsorted and
    /// random, or those of an affine map (as `integerize` makes them).
    fn requantize(&mut self, acc: Value, span: i64) -> Result<Option<Value>> {
        let dims = self.dims(acc);
        let Some(&c) = dims.get(1) else {
            return Ok(None);
        };
        let c = c as usize;
        let odt = self.low_bit()?;
        let (lo, hi) = odt.quant_range().unwrap_or((0, 1));
        let l = (hi - lo) as usize;
        let span = span.clamp(1, 1 << 28);
        let affine = self.u.arbitrary::<bool>()?;
        let rng = &mut self.rng;
        let desc: Vec<i64> = (0..c).map(|_| rng.range(0, 1)).collect();
        let mut t = Vec::with_capacity(c * l);
        for &d in &desc {
            if affine {
                let q = rng.range(16, (32 * span / l as i64).max(17)) as f64 / 16.0;
                let o = rng.range(-span, span) as f64;
                let sign = if d == 1 { -1.0 } else { 1.0 };
                t.extend((0..l).map(|k| (o + sign * (k as f64 + 0.5) * q).ceil() as i64));
            } else {
                t.extend((0..l).map(|_| rng.range(-span, span)));
            }
        }
        let t = self.konst(DType::I32, &[c, l], store(DType::I32, t));
        let d = self.konst(DType::I8, &[c], store(DType::I8, desc));
        let op = Op::Requantize {
            dtype: odt,
            scale: F32(1.0),
        };
        Ok(self.node(op, vec![acc, t, d], "requant"))
    }

    fn window(&mut self, hw: [u64; 2], conv: bool) -> Result<Option<Window>> {
        let kernel = [
            self.u.int_in_range(1u64..=4)?,
            self.u.int_in_range(1u64..=4)?,
        ];
        let strides = [
            self.u.int_in_range(1u64..=3)?,
            self.u.int_in_range(1u64..=3)?,
        ];
        // Pools refuse pads that reach the kernel (as ONNX Runtime does); convolutions
        // take any padding, even one that puts a whole window on the border.
        let mut pads = [0u64; 4];
        for (i, p) in pads.iter_mut().enumerate() {
            let drawn = self.u.int_in_range(0u64..=2)?;
            *p = if conv {
                drawn
            } else {
                drawn.min(kernel[i % 2] - 1)
            };
        }
        let dilations = if conv {
            [
                self.u.int_in_range(1u64..=2)?,
                self.u.int_in_range(1u64..=2)?,
            ]
        } else {
            [1, 1]
        };
        let w = Window {
            kernel,
            strides,
            pads,
            dilations,
            ceil_mode: !conv && self.u.arbitrary()?,
        };
        let fits = (0..2).all(|a| w.output_extent(a, hw[a]).is_some_and(|e| e >= 1));
        Ok(fits.then_some(w))
    }

    fn conv(&mut self, x: Value) -> Result<Option<Value>> {
        let d = self.dims(x);
        let (cin, hw) = (d[1] as usize, [d[2], d[3]]);
        let Some(window) = self.window(hw, true)? else {
            return Ok(None);
        };
        let depthwise = self.u.ratio(1u8, 4)?;
        let group = if depthwise {
            cin
        } else {
            let g = self.u.int_in_range(1usize..=3)?;
            if cin % g == 0 {
                g
            } else {
                1
            }
        };
        let m = group
            * self
                .u
                .int_in_range(1usize..=if depthwise { 2 } else { 6 })?;
        let cg = cin / group;
        let (wdt, wr) = match self.u.int_in_range(0u8..=2)? {
            0 => (DType::Ternary, 1),
            _ => {
                let b = self.u.int_in_range(2u8..=8)?;
                (int_dtype(true, b), (1i64 << (b - 1)) - 1)
            }
        };
        let k = (window.kernel[0] * window.kernel[1]) as usize;
        let wn = m * cg * k;
        let rng = &mut self.rng;
        let wv: Vec<i64> = (0..wn).map(|_| rng.range(-wr, wr)).collect();
        let w = self.konst(
            wdt,
            &[m, cg, window.kernel[0] as usize, window.kernel[1] as usize],
            store(wdt, wv),
        );
        let mut ins = vec![x, w];
        if self.u.arbitrary()? {
            let rng = &mut self.rng;
            let bv = (0..m).map(|_| rng.range(-300, 300)).collect();
            ins.push(self.konst(DType::I32, &[m], store(DType::I32, bv)));
        }
        let op = Op::QConv {
            window,
            group: group as u64,
        };
        let Some(acc) = self.node(op, ins, "conv") else {
            return Ok(None);
        };
        if self.u.ratio(1u8, 6)? {
            self.outputs.push(acc);
        }
        self.requantize(acc, 40 * (cg * k) as i64)
    }

    fn gemm(&mut self, x: Value) -> Result<Option<Value>> {
        let x = if self.g.ty(x).shape.rank() == 4 {
            match self.node(Op::Flatten { axis: 1 }, vec![x], "flatten") {
                Some(f) => f,
                None => return Ok(None),
            }
        } else {
            x
        };
        let k = self.dims(x)[1] as usize;
        let outs = self.u.int_in_range(1usize..=20)?;
        let trans_b = self.u.arbitrary()?;
        let (wdt, wr) = match self.u.int_in_range(0u8..=2)? {
            0 => (DType::Ternary, 1),
            _ => {
                let b = self.u.int_in_range(2u8..=8)?;
                (int_dtype(true, b), (1i64 << (b - 1)) - 1)
            }
        };
        let rng = &mut self.rng;
        let wv: Vec<i64> = (0..k * outs).map(|_| rng.range(-wr, wr)).collect();
        let shape = if trans_b { [outs, k] } else { [k, outs] };
        let w = self.konst(wdt, &shape, store(wdt, wv));
        let mut ins = vec![x, w];
        if self.u.arbitrary()? {
            let rng = &mut self.rng;
            let bv = (0..outs).map(|_| rng.range(-500, 500)).collect();
            ins.push(self.konst(DType::I32, &[outs], store(DType::I32, bv)));
        }
        let Some(acc) = self.node(Op::QGemm { trans_b }, ins, "gemm") else {
            return Ok(None);
        };
        self.requantize(acc, 30 * k as i64)
    }

    fn pool(&mut self, x: Value) -> Result<Option<Value>> {
        let d = self.dims(x);
        let Some(window) = self.window([d[2], d[3]], false)? else {
            return Ok(None);
        };
        if self.u.arbitrary()? {
            return Ok(self.node(Op::MaxPool { window }, vec![x], "maxpool"));
        }
        let k = window.kernel[0] * window.kernel[1];
        match self.node(Op::SumPool { window }, vec![x], "sumpool") {
            Some(s) => self.requantize(s, 130 * k as i64),
            None => Ok(None),
        }
    }

    fn add(&mut self, a: Value) -> Result<Option<Value>> {
        let shape = self.g.ty(a).shape.clone();
        let same: Vec<Value> = self
            .acts
            .iter()
            .copied()
            .filter(|&v| self.g.ty(v).shape == shape)
            .collect();
        let b = *self.u.choose(&same)?;
        let (ka, kb) = (
            self.u.int_in_range(-100_000i64..=100_000)?,
            self.u.int_in_range(-100_000i64..=100_000)?,
        );
        let ka_v = self.konst(DType::I32, &[], store(DType::I32, vec![ka]));
        let kb_v = self.konst(DType::I32, &[], store(DType::I32, vec![kb]));
        let Some(s) = self.node(Op::ScaledAdd, vec![a, b, ka_v, kb_v], "add") else {
            return Ok(None);
        };
        if self.u.ratio(1u8, 4)? {
            self.outputs.push(s);
        }
        self.requantize(s, 130 * (ka.abs() + kb.abs()) + 1)
    }

    fn global(&mut self, x: Value) -> Result<Option<Value>> {
        if self.u.arbitrary()? {
            return Ok(self.node(Op::GlobalMaxPool, vec![x], "gmax"));
        }
        let d = self.dims(x);
        match self.node(Op::GlobalSumPool, vec![x], "gsum") {
            Some(s) => self.requantize(s, 130 * (d[2] * d[3]) as i64),
            None => Ok(None),
        }
    }

    /// One layer on a random available value.
    fn layer(&mut self) -> Result<()> {
        let x = *self.u.choose(&self.acts)?;
        let four_d = self.g.ty(x).shape.rank() == 4;
        let y = match (self.u.int_in_range(0u8..=5)?, four_d) {
            (0 | 1, true) => self.conv(x)?,
            (2, true) => self.pool(x)?,
            (3, _) => self.add(x)?,
            (4, true) => self.global(x)?,
            _ => self.gemm(x)?,
        };
        if let Some(y) = y {
            self.acts.push(y);
        }
        Ok(())
    }

    /// A graph input `[N, dims..]` quantized to a random low-bit type with scale 1.
    fn input(&mut self, i: usize, dims: &[usize]) -> Result<(Value, Vec<usize>, DType)> {
        let dtype = self.low_bit()?;
        let mut shape = vec![Dim::Batch];
        shape.extend(dims.iter().map(|&d| Dim::Fixed(d as u64)));
        let x = self
            .g
            .add_input(format!("x{i}"), TensorType::f32(Shape(shape)));
        let q = Op::Quantize {
            dtype,
            scale: F32(1.0),
            offset: F32(0.0),
        };
        let name = format!("x{i}/quantize");
        let ty = fqc_ir::infer::infer(&q, &[self.g.ty(x)])
            .map_err(|_| arbitrary::Error::IncorrectFormat)?;
        let v = self.g.add_node(q, vec![x], ty, &name, None);
        Ok((v, dims.to_vec(), dtype))
    }
}

/// A random integer graph and input batch (see the module docs).
pub fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let seed: u64 = u.arbitrary()?;
    let mut b = Builder {
        u,
        rng: Lcg(seed),
        g: Graph::new("fuzz"),
        acts: Vec::new(),
        outputs: Vec::new(),
        count: 0,
    };
    let n = b.u.int_in_range(1usize..=3)?;
    let dims: Vec<usize> = if b.u.ratio(1u8, 6)? {
        vec![b.u.int_in_range(1usize..=64)?]
    } else {
        vec![
            b.u.int_in_range(1usize..=6)?,
            b.u.int_in_range(1usize..=14)?,
            b.u.int_in_range(1usize..=20)?,
        ]
    };
    let mut specs = Vec::new();
    for i in 0..b.u.int_in_range(1usize..=2)? {
        let (v, d, dt) = b.input(i, &dims)?;
        b.acts.push(v);
        specs.push((d, dt));
    }
    for _ in 0..b.u.int_in_range(1usize..=6)? {
        b.layer()?;
    }
    let last = *b.acts.last().unwrap_or(&b.acts[0]);
    let out = if b.u.arbitrary()? && b.g.ty(last).scale.is_some() {
        b.node(Op::Dequantize, vec![last], "dequantize")
            .unwrap_or(last)
    } else {
        last
    };
    let mut outputs = vec![out];
    for v in std::mem::take(&mut b.outputs) {
        if !outputs.contains(&v) {
            outputs.push(v);
        }
    }
    b.g.set_outputs(outputs);
    let mut inputs = Vec::new();
    for (d, dt) in specs {
        let (lo, hi) = dt.quant_range().unwrap_or((0, 1));
        let numel = n * d.iter().product::<usize>();
        let rng = &mut b.rng;
        let data = (0..numel)
            .map(|_| rng.range(2 * lo - 3, 2 * hi + 3) as f32 * 0.5)
            .collect();
        let mut shape = vec![n];
        shape.extend(d);
        inputs.push(Tensor {
            shape,
            data: TensorData::F32(data),
        });
    }
    Ok(Case { graph: b.g, inputs })
}

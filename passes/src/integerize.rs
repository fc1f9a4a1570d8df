//! `integerize`: turns a fake-quant graph into an integer-only graph.
//!
//! The pass walks the schedule once and gives every fake-quant value a symbolic meaning
//! over the new integer nodes (see [`Sym`]): a low-bit tensor, its dequantized real
//! value `q·s`, per-channel ternary/low-bit weights, or an i32 accumulator whose real
//! value is `clip(acc·A_c + B_c, lo_c, hi_c)` per channel. Then
//!
//! * the input normalisation `div(sub(x, m), d)` (scalar `sub`/`add`/`mul`/`div`) is
//!   absorbed into the single input `quantize(x) {offset, scale = s·d}`;
//! * `conv`/`gemm`/`matmul` of a dequantized activation and dequantized integer weights
//!   become `qconv`/`qgemm` accumulators with `A_c = s_x·s_w[c]`, `B_c` the f32 bias;
//!   per-channel `mul`/`add`/`sub`/`div` by constants (an unfoldable BatchNorm's affine,
//!   negative slopes included), `relu` and `clip` fold into `A`, `B`, `lo`, `hi`;
//! * `quantize` of an accumulator becomes `requantize` with exact per-channel thresholds
//!   ([`crate::thresholds`]; a negative slope gives a `descending` channel);
//! * max/global-max pooling, reshape, flatten, transpose and concat of dequantized values
//!   run on the integers (they commute with a positive per-tensor scale);
//! * residual `add`s, average and global-average pooling of dequantized values are
//!   streamlined by the e-graph ([`crate::streamline`]) into `scaled_add` / `sumpool` /
//!   `global_sumpool` followed by `requantize` (a pool divisor is folded into the
//!   thresholds; pools whose divisor varies by position are refused);
//! * an accumulator or dequantized value that reaches a graph output or a trailing op
//!   (softmax, layout) gets the output boundary `dequantize(acc, scale = A, bias = B)` —
//!   the logits are the only float values.
//!
//! Soundness: each step is an identity of exact real arithmetic on the f32 parameters
//! (see `thresholds` for the requantization), so the integer graph computes the exact
//! real-arithmetic value of the fake-quant formula; the f32 fake-quant interpreter
//! differs only by its own float rounding (≤ 1 LSB at near-ties). The input quantizer's
//! folded `s·d` and offset are rounded to f32 once: exact when `d` is a power of two;
//! otherwise an input level can differ by one from the two-step f32 fake-quant at a
//! near-tie, and such a difference propagates through the network like any input change. Anything else is
//! [`PassError::Unsupported`] naming the node, and the result is checked with
//! [`integer_only_report`] before the pass returns. New nodes are appended and the
//! schedule replaced (old nodes stay in the arena until `dce`); value ids never change.

use std::collections::HashMap;

use fqc_ir::{
    BinaryOp, DType, Dim, Graph, Node, Op, Scale, Shape, Tensor, TensorData, TensorType, Value,
    ValueDef, F32,
};

use crate::context::PassContext;
use crate::integer_report::{integer_only_report, node_label};
use crate::integerize_acc::Acc;

use crate::streamline::{Leaf, Term};
use crate::thresholds::Rat;
use crate::{Pass, PassError, Result};

/// The `integerize` pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct Integerize;

impl Pass for Integerize {
    fn name(&self) -> &'static str {
        "integerize"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        integerize(g, cx)
    }
}

/// What a fake-quant value is in terms of the integer graph.
#[derive(Clone, Debug)]
pub(crate) enum Sym {
    /// `(x - offset) / div` of a graph input `x` (float, before quantization).
    Input { x: Value, offset: f64, div: f64 },
    /// A low-bit integer tensor at per-tensor scale.
    Int { v: Value, dtype: DType, scale: F32 },
    /// The real value `v · scale` of a low-bit tensor (a `dequantize` of it).
    Real { v: Value, dtype: DType, scale: F32 },
    /// Dequantized constant integer weights: scale per index of `axis` (None: per tensor).
    Weight {
        v: Value,
        scales: Vec<Rat>,
        axis: Option<usize>,
    },
    /// A float constant (bias, affine parameters).
    Const(Value),
    /// An accumulator with its per-channel real meaning.
    Acc(Box<Acc>),
    /// A join / pool of reals awaiting its quantizer (streamlined there).
    Lazy(Term),
    /// A float value after the output boundary.
    Float(Value),
}

pub(crate) struct State<'a> {
    pub g: &'a mut Graph,
    pub order: Vec<Node>,
    pub(crate) syms: HashMap<Value, Sym>,
    pub(crate) leaves: Vec<(Value, Leaf)>,
    pub(crate) pools: Vec<u64>,
    pub(crate) windows: Vec<fqc_ir::Window>,
    pub(crate) gsum: u64,
    pub(crate) boundary: HashMap<Value, Value>,
    pub(crate) notes: Vec<String>,
    /// The old node being rewritten (for names and errors).
    pub node: Node,
}

/// Runs the pass (see the module docs).
pub fn integerize(g: &mut Graph, cx: &mut PassContext) -> Result<()> {
    let old_order = g.order().to_vec();
    let mut st = State {
        g,
        order: Vec::new(),
        syms: HashMap::new(),
        leaves: Vec::new(),
        pools: Vec::new(),
        windows: Vec::new(),
        gsum: 1,
        boundary: HashMap::new(),
        notes: Vec::new(),
        node: Node(0),
    };
    let live = live_nodes(st.g, &old_order);
    for n in old_order.into_iter().filter(|n| live[n.index()]) {
        st.node = n;
        let sym = st.rewrite()?;
        let out = st.g.node(n).output;
        st.syms.insert(out, sym);
    }
    let outputs: Vec<Value> = st.g.outputs().to_vec();
    let mut new_outputs = Vec::with_capacity(outputs.len());
    for v in outputs {
        new_outputs.push(match st.sym(v) {
            Sym::Int { v, .. } | Sym::Float(v) | Sym::Const(v) => v,
            Sym::Input { x, offset, div } if offset == 0.0 && div == 1.0 => x,
            _ => {
                st.node = match st.g.value(v).def {
                    ValueDef::Node(n) => n,
                    _ => st.node,
                };
                st.float_value(v)?
            }
        });
    }
    let order = std::mem::take(&mut st.order);
    let notes = std::mem::take(&mut st.notes);
    g.set_order(order);
    g.set_outputs(new_outputs);
    // Value ids are kept, but calibration ranges describe float values that are gone.
    cx.ranges.clear();
    cx.notes.extend(notes);
    let report = integer_only_report(g);
    if let Some((node, op, why)) = report.float_ops.first() {
        return Err(PassError::Unsupported {
            pass: "integerize",
            node: node.clone(),
            op,
            msg: format!("a float op would remain on the inference path: {why}"),
        });
    }
    cx.notes.push(format!("integerize: {report}"));
    Ok(())
}

fn live_nodes(g: &Graph, order: &[Node]) -> Vec<bool> {
    let mut live_v = vec![false; g.num_values()];
    let mut live_n = vec![false; g.num_nodes()];
    for &v in g.outputs() {
        live_v[v.index()] = true;
    }
    for &n in order.iter().rev() {
        let d = g.node(n);
        if live_v[d.output.index()] {
            live_n[n.index()] = true;
            for &v in &d.inputs {
                live_v[v.index()] = true;
            }
        }
    }
    live_n
}

impl State<'_> {
    pub fn err(&self, msg: impl Into<String>) -> PassError {
        PassError::Unsupported {
            pass: "integerize",
            node: node_label(self.g, self.node),
            op: self.g.node(self.node).op.name(),
            msg: msg.into(),
        }
    }

    pub(crate) fn sym(&self, v: Value) -> Sym {
        if let Some(s) = self.syms.get(&v) {
            return s.clone();
        }
        let ty = self.g.ty(v);
        match (self.g.value(v).def, &ty.scale) {
            (ValueDef::Input(_), _) if ty.dtype == DType::F32 => Sym::Input {
                x: v,
                offset: 0.0,
                div: 1.0,
            },
            (_, Some(Scale::Tensor(s))) if ty.dtype.is_low_bit() => Sym::Int {
                v,
                dtype: ty.dtype,
                scale: *s,
            },
            _ => Sym::Const(v),
        }
    }

    /// Appends a node named after the old one; its result takes the old result's name.
    pub fn emit(&mut self, op: Op, inputs: Vec<Value>) -> Result<Value> {
        let tys: Vec<TensorType> = inputs.iter().map(|&v| self.g.ty(v).clone()).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let ty = fqc_ir::infer::infer(&op, &refs).map_err(|e| self.err(e))?;
        let old = self.g.node(self.node);
        let (name, vname) = (old.name.clone(), self.g.value(old.output).name.clone());
        let v = self.g.add_node(op, inputs, ty, name, vname);
        let n = *self.g.order().last().expect("node just added");
        self.order.push(n);
        Ok(v)
    }

    pub fn constant(&mut self, dtype: DType, shape: Vec<usize>, data: TensorData) -> Value {
        let ty = TensorType::new(
            dtype,
            Shape::fixed(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>()),
        );
        self.g.add_const(None, ty, Tensor { shape, data })
    }

    /// The f32 payload of a constant operand.
    pub fn const_f32(&self, v: Value) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self
            .g
            .const_tensor(v)
            .filter(|_| self.g.ty(v).dtype == DType::F32)
            .ok_or_else(|| {
                self.err(format!(
                    "operand %{} must be a float constant with data",
                    v.0
                ))
            })?;
        Ok((t.shape.clone(), t.as_f32().unwrap_or_default().to_vec()))
    }

    pub fn rat(&self, x: f32) -> Result<Rat> {
        Rat::from_f32(x)
            .ok_or_else(|| self.err(format!("parameter {x} is not representable exactly")))
    }

    fn rewrite(&mut self) -> Result<Sym> {
        let d = self.g.node(self.node).clone();
        let ins: Vec<Sym> = d.inputs.iter().map(|&v| self.sym(v)).collect();
        let out_ty = self.g.ty(d.output).clone();
        match (&d.op, ins.as_slice()) {
            (
                Op::Quantize {
                    dtype,
                    scale,
                    offset,
                },
                [x],
            ) => self.quantize(x, *dtype, *scale, *offset),
            (Op::Dequantize, [Sym::Int { v, dtype, scale }]) => Ok(Sym::Real {
                v: *v,
                dtype: *dtype,
                scale: *scale,
            }),
            (Op::Dequantize, [Sym::Const(v)]) => self.weight(*v),
            (Op::Conv { window, group }, [x, w, rest @ ..]) => {
                let op = Op::QConv {
                    window: window.clone(),
                    group: *group,
                };
                self.layer(op, x, w, rest.first(), 0, Rat::ONE, Rat::ONE, &out_ty)
            }
            (
                Op::Gemm {
                    alpha,
                    beta,
                    trans_a: false,
                    trans_b,
                },
                [x, w, rest @ ..],
            ) => {
                let (a, b) = (self.rat(alpha.get())?, self.rat(beta.get())?);
                let axis = if *trans_b { 0 } else { 1 };
                self.layer(
                    Op::QGemm { trans_b: *trans_b },
                    x,
                    w,
                    rest.first(),
                    axis,
                    a,
                    b,
                    &out_ty,
                )
            }
            (Op::MatMul, [x, w]) if out_ty.shape.rank() == 2 => self.layer(
                Op::QGemm { trans_b: false },
                x,
                w,
                None,
                1,
                Rat::ONE,
                Rat::ONE,
                &out_ty,
            ),
            (Op::Binary(op), [a, b]) => self.binary(*op, a, b),
            (Op::Sum, [a, b]) => self.binary(BinaryOp::Add, a, b),
            (Op::Relu, [Sym::Acc(acc)]) => self.clip_acc(acc, Some(Rat::ZERO), None),
            (Op::Clip { min, max }, [Sym::Acc(acc)]) => {
                let bound = |x: f32| {
                    if x.is_infinite() {
                        Ok(None)
                    } else {
                        self.rat(x).map(Some)
                    }
                };
                let (lo, hi) = (bound(min.get())?, bound(max.get())?);
                self.clip_acc(acc, lo, hi)
            }
            (Op::Relu, [Sym::Real { dtype, .. }])
                if dtype.quant_range().is_some_and(|r| r.0 >= 0) =>
            {
                Ok(ins[0].clone())
            }
            (Op::Relu, [x @ (Sym::Real { .. } | Sym::Lazy(_))]) => {
                Ok(Sym::Lazy(Term::Relu(Box::new(self.term(x)?))))
            }
            (
                Op::AveragePool {
                    window,
                    count_include_pad,
                },
                [x @ (Sym::Real { .. } | Sym::Lazy(_))],
            ) => {
                let divisor = self.avg_divisor(window, *count_include_pad, &d.inputs[0])?;
                let pool = self.pools.len();
                self.pools.push(window.kernel[0] * window.kernel[1]);
                self.windows.push(window.clone());
                Ok(Sym::Lazy(Term::AvgPool {
                    pool,
                    divisor,
                    x: Box::new(self.term(x)?),
                }))
            }
            (Op::GlobalAveragePool, [x @ (Sym::Real { .. } | Sym::Lazy(_))]) => {
                let t = self.g.ty(d.inputs[0]).shape.clone();
                let hw = match t.0.as_slice() {
                    [_, _, Dim::Fixed(h), Dim::Fixed(w)] => h * w,
                    _ => return Err(self.err("global pooling needs a fixed NCHW shape")),
                };
                self.gsum = self.gsum.max(hw);
                Ok(Sym::Lazy(Term::Gap {
                    divisor: hw,
                    x: Box::new(self.term(x)?),
                }))
            }
            (
                Op::MaxPool { .. }
                | Op::GlobalMaxPool
                | Op::Reshape { .. }
                | Op::Flatten { .. }
                | Op::Transpose { .. }
                | Op::Concat { .. },
                [Sym::Real { dtype, scale, .. }, ..],
            ) => {
                let (dtype, scale) = (*dtype, *scale);
                let mut vs = Vec::new();
                for s in &ins {
                    match s {
                        Sym::Real {
                            v,
                            dtype: dt,
                            scale: sc,
                        } if *dt == dtype && *sc == scale => vs.push(*v),
                        _ => {
                            return Err(self
                                .err("operands must be dequantized tensors of one type and scale"))
                        }
                    }
                }
                let v = self.emit(d.op.clone(), vs)?;
                Ok(Sym::Real { v, dtype, scale })
            }
            (
                Op::Softmax { .. }
                | Op::Reshape { .. }
                | Op::Flatten { .. }
                | Op::Transpose { .. }
                | Op::Concat { .. },
                _,
            ) if ins.iter().any(|s| matches!(s, Sym::Float(_) | Sym::Acc(_))) => {
                // Trailing boundary ops: operate on the dequantized logits.
                let mut vs = Vec::new();
                for &v in &d.inputs {
                    vs.push(self.float_value(v)?);
                }
                Ok(Sym::Float(self.emit(d.op.clone(), vs)?))
            }
            _ => Err(self.err(format!(
                "no integer form for this op on operands [{}]",
                ins.iter().map(describe).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// A value as a float after the output boundary (emitting the boundary dequantize).
    pub fn float_value(&mut self, v: Value) -> Result<Value> {
        if let Some(&f) = self.boundary.get(&v) {
            return Ok(f);
        }
        let f = match self.sym(v) {
            Sym::Float(f) => f,
            Sym::Real { v: q, .. } => self.emit(Op::Dequantize, vec![q])?,
            Sym::Acc(acc) => self.dequantize_acc(&acc)?,
            other => {
                return Err(self.err(format!(
                    "{} cannot become an output value",
                    describe(&other)
                )))
            }
        };
        self.boundary.insert(v, f);
        Ok(f)
    }

    fn weight(&mut self, v: Value) -> Result<Sym> {
        let ty = self.g.ty(v).clone();
        if !ty.dtype.is_low_bit() || self.g.const_tensor(v).is_none() {
            return Err(self.err("dequantize of a constant needs low-bit integer data"));
        }
        match ty.scale {
            Some(Scale::Tensor(s)) => Ok(Sym::Weight {
                v,
                scales: vec![self.rat(s.get())?],
                axis: None,
            }),
            Some(Scale::Channel { axis, scales }) => {
                let (_, s) = self.const_f32(scales)?;
                let scales = s.iter().map(|&x| self.rat(x)).collect::<Result<Vec<_>>>()?;
                Ok(Sym::Weight {
                    v,
                    scales,
                    axis: Some(axis),
                })
            }
            None => Err(self.err("dequantized constant has no scale")),
        }
    }

    /// `qconv` / `qgemm` of a dequantized activation with dequantized weights; `axis` is
    /// the weights' output-channel axis, `alpha`/`beta` gemm's factors.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        op: Op,
        x: &Sym,
        w: &Sym,
        bias: Option<&Sym>,
        axis: usize,
        alpha: Rat,
        beta: Rat,
        out: &TensorType,
    ) -> Result<Sym> {
        let (
            Sym::Real {
                v: xv, scale: sx, ..
            },
            Sym::Weight {
                v: wv,
                scales,
                axis: waxis,
            },
        ) = (x, w)
        else {
            return Err(self.err(format!(
                "needs a dequantized activation and dequantized integer weights, got {} and {}",
                describe(x),
                describe(w)
            )));
        };
        let c = match out.shape.0.get(1).and_then(|d| d.fixed()) {
            Some(c) => c as usize,
            None => return Err(self.err("output needs a fixed channel axis 1")),
        };
        if waxis.is_some_and(|a| a != axis) || (waxis.is_some() && scales.len() != c) {
            return Err(self.err(format!(
                "weight scales must be per tensor or per output channel (axis {axis})"
            )));
        }
        let sx = self.rat(sx.get())?;
        let mut a = Vec::with_capacity(c);
        for ch in 0..c {
            let sw = scales[if waxis.is_some() { ch } else { 0 }];
            a.push(
                sx.checked_mul(sw)
                    .and_then(|p| p.checked_mul(alpha))
                    .ok_or_else(|| self.err("scale product overflows"))?,
            );
        }
        let b = match bias {
            None => vec![Rat::ZERO; c],
            Some(Sym::Const(bv)) => {
                // Conv's bias is one value per output channel; gemm's C broadcasts.
                let per = if matches!(op, Op::QConv { .. }) {
                    self.per_channel(*bv, 2, c)?
                } else {
                    self.per_channel(*bv, out.shape.rank(), c)?
                };
                per.iter()
                    .map(|r| {
                        r.checked_mul(beta)
                            .ok_or_else(|| self.err("bias overflows"))
                    })
                    .collect::<Result<_>>()?
            }
            Some(other) => {
                return Err(self.err(format!(
                    "bias must be a float constant, got {}",
                    describe(other)
                )))
            }
        };
        let v = self.emit(op, vec![*xv, *wv])?;
        Ok(Sym::Acc(Box::new(Acc::new(v, a, b))))
    }

    fn binary(&mut self, op: BinaryOp, a: &Sym, b: &Sym) -> Result<Sym> {
        match (op, a, b) {
            (_, Sym::Input { x, offset, div }, Sym::Const(c)) => {
                let (_, cv) = self.const_f32(*c)?;
                let [k] = cv[..] else {
                    return Err(self.err("input normalisation must use a scalar constant"));
                };
                let k = f64::from(k);
                let (offset, div) = match op {
                    BinaryOp::Sub => (offset + k * div, *div),
                    BinaryOp::Add => (offset - k * div, *div),
                    BinaryOp::Div => (*offset, div * k),
                    BinaryOp::Mul => (*offset, div / k),
                    BinaryOp::Min | BinaryOp::Max | BinaryOp::Pow => {
                        return Err(self.err("input normalisation is an affine map"))
                    }
                };
                if !(div.is_finite() && div > 0.0 && offset.is_finite()) {
                    return Err(self.err("input normalisation must keep a positive finite scale"));
                }
                Ok(Sym::Input { x: *x, offset, div })
            }
            (_, Sym::Acc(acc), Sym::Const(c)) => self.affine(op, acc, *c, false),
            (BinaryOp::Add | BinaryOp::Mul | BinaryOp::Sub, Sym::Const(c), Sym::Acc(acc)) => {
                self.affine(op, acc, *c, true)
            }
            (BinaryOp::Add, Sym::Real { .. } | Sym::Lazy(_), Sym::Real { .. } | Sym::Lazy(_)) => {
                Ok(Sym::Lazy(Term::Add(
                    Box::new(self.term(a)?),
                    Box::new(self.term(b)?),
                )))
            }
            _ => Err(self.err(format!(
                "no integer form of {} on {} and {}",
                op.name(),
                describe(a),
                describe(b)
            ))),
        }
    }
}

/// A short description of a symbolic value for error messages.
pub(crate) fn describe(s: &Sym) -> String {
    match s {
        Sym::Input { .. } => "an unquantized graph input".into(),
        Sym::Int { dtype, .. } => format!("a quantized {dtype} tensor"),
        Sym::Real { dtype, .. } => format!("a dequantized {dtype} tensor"),
        Sym::Weight { .. } => "dequantized constant weights".into(),
        Sym::Const(_) => "a float constant".into(),
        Sym::Acc(_) => "an accumulator (conv/gemm output)".into(),
        Sym::Lazy(_) => "a float join/pool".into(),
        Sym::Float(_) => "a float value after the output boundary".into(),
    }
}

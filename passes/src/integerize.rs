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
    BinaryOp, DType, Graph, Node, Op, Scale, Shape, Tensor, TensorData, TensorType, Value,
    ValueDef, F32,
};

use crate::context::PassContext;
use crate::integer_report::{integer_only_report, node_label};
use crate::integerize_acc::Acc;
use crate::integerize_table::{MapSym, PartsSym};

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
    /// An element-wise function of one dequantized tensor awaiting its quantizer (a
    /// `table` there; see `integerize_table`).
    Map(Box<MapSym>),
    /// A concat of dequantized tensors of different types or scales awaiting its
    /// quantizer (each part rescaled by a `table` there).
    Parts(Box<PartsSym>),
    /// A float value: after the output boundary, or inside a float island.
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
    /// Why each float-island node (by label, with its op) has no integer form.
    pub(crate) island_reasons: Vec<(String, &'static str, String)>,
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
        island_reasons: Vec::new(),
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
    let reasons = std::mem::take(&mut st.island_reasons);
    g.set_order(order);
    g.set_outputs(new_outputs);
    // Value ids are kept, but calibration ranges describe float values that are gone.
    cx.ranges.clear();
    cx.notes.extend(notes);
    let report = integer_only_report(g);
    // The reasons of the nodes that really ended up in float (a trailing op after the
    // output boundary is no island).
    let why: Vec<&(String, &'static str, String)> = reasons
        .iter()
        .filter(|(n, _, _)| report.float_ops.iter().any(|(f, _, _)| f == n))
        .collect();
    for (node, op, r) in &why {
        cx.notes
            .push(format!("integerize: float island at `{node}` ({op}: {r})"));
    }
    if cx.config.require_integer_only && !report.is_integer_only() {
        let (node, op, msg) = match why.first() {
            Some(&(n, op, r)) => (n.clone(), *op, r.clone()),
            None => report.float_ops[0].clone(),
        };
        return Err(PassError::Unsupported {
            pass: "integerize",
            node,
            op,
            msg: format!(
                "no exact integer form ({msg}); integer-only: {}",
                report.verdict()
            ),
        });
    }
    cx.notes.push(format!(
        "integerize: {report}; integer-only: {}",
        report.verdict()
    ));
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

    /// The new meaning of the current node: its integer form, or a float island (the
    /// op re-run on dequantized operands) where it has none.
    fn rewrite(&mut self) -> Result<Sym> {
        let d = self.g.node(self.node).clone();
        let ins: Vec<Sym> = d.inputs.iter().map(|&v| self.sym(v)).collect();
        let why = match self.integer_rule(&d, &ins) {
            Ok(Some(sym)) => return Ok(sym),
            Ok(None) => format!(
                "no integer form for this op on operands [{}]",
                ins.iter().map(describe).collect::<Vec<_>>().join(", ")
            ),
            Err(PassError::Unsupported { msg, .. }) => msg,
            Err(e) => return Err(e),
        };
        self.island(&d, why)
    }

    /// The integer form of node `d` with operands `ins`, if it has one.
    fn integer_rule(&mut self, d: &fqc_ir::NodeData, ins: &[Sym]) -> Result<Option<Sym>> {
        let out_ty = self.g.ty(d.output).clone();
        let sym = match (&d.op, ins) {
            (
                Op::Quantize {
                    dtype,
                    scale,
                    offset,
                },
                [x],
            ) => self.quantize(x, *dtype, *scale, *offset)?,
            (Op::Dequantize, [Sym::Int { v, dtype, scale }]) => Sym::Real {
                v: *v,
                dtype: *dtype,
                scale: *scale,
            },
            (Op::Dequantize, [Sym::Const(v)]) => self.weight(*v)?,
            (Op::Conv { window, group }, [x, w, rest @ ..]) => {
                let op = Op::QConv {
                    window: window.clone(),
                    group: *group,
                };
                self.layer(op, x, w, rest.first(), 0, Rat::ONE, Rat::ONE, &out_ty)?
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
                let op = Op::QGemm { trans_b: *trans_b };
                self.layer(op, x, w, rest.first(), axis, a, b, &out_ty)?
            }
            (Op::MatMul, [x, w]) if out_ty.shape.rank() == 2 => {
                let op = Op::QGemm { trans_b: false };
                self.layer(op, x, w, None, 1, Rat::ONE, Rat::ONE, &out_ty)?
            }
            (Op::Relu, [Sym::Acc(acc)]) => self.clip_acc(acc, Some(Rat::ZERO), None)?,
            (Op::Clip { min, max }, [Sym::Acc(acc)]) => {
                let bound = |x: f32| {
                    if x.is_infinite() {
                        Ok(None)
                    } else {
                        self.rat(x).map(Some)
                    }
                };
                let (lo, hi) = (bound(min.get())?, bound(max.get())?);
                self.clip_acc(acc, lo, hi)?
            }
            (Op::Relu, [Sym::Real { dtype, .. }])
                if dtype.quant_range().is_some_and(|r| r.0 >= 0) =>
            {
                ins[0].clone()
            }
            (Op::Relu, [x @ (Sym::Real { .. } | Sym::Lazy(_))]) => {
                Sym::Lazy(Term::Relu(Box::new(self.term(x)?)))
            }
            (Op::Binary(op), [a, b]) => match self.binary(*op, a, b)? {
                Some(sym) => sym,
                None => return self.real_rule(d, ins),
            },
            (Op::Sum, [a, b]) => match self.binary(BinaryOp::Add, a, b)? {
                Some(sym) => sym,
                None => return self.real_rule(d, ins),
            },
            (
                Op::AveragePool {
                    window,
                    count_include_pad,
                },
                [x @ (Sym::Real { .. } | Sym::Lazy(_))],
            ) => match self.avg_divisor(window, *count_include_pad, &d.inputs[0])? {
                Some(divisor) => {
                    let pool = self.pools.len();
                    self.pools.push(window.kernel[0] * window.kernel[1]);
                    self.windows.push(window.clone());
                    Sym::Lazy(Term::AvgPool {
                        pool,
                        divisor,
                        x: Box::new(self.term(x)?),
                    })
                }
                None => return self.real_rule(d, ins),
            },
            (Op::GlobalAveragePool, [x @ (Sym::Real { .. } | Sym::Lazy(_))]) => {
                self.gap(d.inputs[0], x, false)?
            }
            _ => return self.real_rule(d, ins),
        };
        Ok(Some(sym))
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
        Sym::Map(_) => "an element-wise function of a dequantized tensor".into(),
        Sym::Parts(_) => "a concat of dequantized tensors at different scales".into(),
        Sym::Float(_) => "a float value".into(),
    }
}

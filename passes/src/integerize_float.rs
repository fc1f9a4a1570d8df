//! Float islands and the output boundary of `integerize`: where a value must be a float.
//!
//! A node without an exact integer form is not an error: it becomes a *float island* —
//! [`State::island`] re-emits the node's own op on float operands and, when the island's
//! result meets a quantizer, that quantizer is emitted as a `quantize` of the computed
//! float. [`State::float_value`] gives any old value as a float in the new graph:
//!
//! * a dequantized tensor: `dequantize` of its levels (`q·s`, as the fake-quant graph);
//! * dequantized weights: `dequantize` of the integer constant;
//! * an accumulator: the boundary `dequantize(acc, scale = A, bias = B)`, followed by a
//!   per-channel `max` / `min` with its clip bounds if it has any;
//! * a deferred value (an input normalisation, a join or pool, an element-wise map, a
//!   concat of parts): the old node that defined it, re-emitted on its operands' float
//!   values — the fake-quant graph's own computation, op for op;
//! * a graph input or a float constant: itself.
//!
//! Soundness: an island computes exactly the fake-quant graph's float ops on exactly the
//! values the fake-quant graph gives them (the dequantized levels, or the same ops on
//! them), so it changes nothing but where the work is done; the accumulator boundary is
//! the one documented in `integerize_quant` (one f32 rounding of `A` and `B`). Islands
//! are listed by [`crate::integer_only_report`] and refused under
//! `require_integer_only`.

use fqc_ir::{BinaryOp, DType, Node, NodeData, Op, TensorData, Value, ValueDef};

use crate::integer_report::node_label;
use crate::integerize::{describe, State, Sym};
use crate::integerize_acc::Acc;
use crate::Result;

impl State<'_> {
    /// Node `d` re-run on float operands (`why`: the reason it has no integer form); a
    /// quantizer of a float gives back a quantized tensor.
    pub(crate) fn island(&mut self, d: &NodeData, why: String) -> Result<Sym> {
        let label = node_label(self.g, self.node);
        if !self.island_reasons.iter().any(|(n, _, _)| *n == label) {
            self.island_reasons.push((label, d.op.name(), why));
        }
        let mut ins = Vec::with_capacity(d.inputs.len());
        for &v in &d.inputs {
            ins.push(self.float_value(v)?);
        }
        let v = self.emit(d.op.clone(), ins)?;
        Ok(match d.op {
            Op::Quantize { dtype, scale, .. } => Sym::Int { v, dtype, scale },
            _ => Sym::Float(v),
        })
    }

    /// Old value `v` as a float value of the new graph (see the module docs).
    pub fn float_value(&mut self, v: Value) -> Result<Value> {
        if let Some(&f) = self.boundary.get(&v) {
            return Ok(f);
        }
        if matches!(self.g.value(v).def, ValueDef::Input(_)) {
            return Ok(v);
        }
        let f = match self.sym(v) {
            Sym::Float(f) => f,
            Sym::Const(c) => c,
            Sym::Real { v: q, .. } => self.emit(Op::Dequantize, vec![q])?,
            Sym::Weight { v: w, .. } => self.emit(Op::Dequantize, vec![w])?,
            Sym::Acc(acc) => self.dequantize_clipped(&acc)?,
            Sym::Input { .. } | Sym::Lazy(_) | Sym::Map(_) | Sym::Parts(_) => {
                let ValueDef::Node(n) = self.g.value(v).def else {
                    return Err(self.err(format!("%{} has no defining node", v.0)));
                };
                self.reemit(n)?
            }
            other @ Sym::Int { .. } => {
                return Err(self.err(format!(
                    "{} is used where a float is expected",
                    describe(&other)
                )))
            }
        };
        self.boundary.insert(v, f);
        Ok(f)
    }

    /// Old node `n` emitted again on float operands (named after itself).
    fn reemit(&mut self, n: Node) -> Result<Value> {
        let saved = self.node;
        self.node = n;
        let d = self.g.node(n).clone();
        let result = (|| {
            let mut ins = Vec::with_capacity(d.inputs.len());
            for &v in &d.inputs {
                ins.push(self.float_value(v)?);
            }
            self.emit(d.op.clone(), ins)
        })();
        self.node = saved;
        result
    }

    /// The accumulator's real value, its clip bounds applied per channel.
    fn dequantize_clipped(&mut self, acc: &Acc) -> Result<Value> {
        let unclipped = Acc::new(acc.v, acc.a.clone(), acc.b.clone());
        let mut f = self.dequantize_acc(&unclipped)?;
        let rank = self.g.ty(acc.v).shape.rank();
        let c = acc.a.len();
        let mut shape = vec![1; rank.max(2) - 1];
        shape[0] = c;
        for (op, bounds, inf) in [
            (BinaryOp::Max, &acc.lo, f32::NEG_INFINITY),
            (BinaryOp::Min, &acc.hi, f32::INFINITY),
        ] {
            if bounds.iter().all(Option::is_none) {
                continue;
            }
            let k: Vec<f32> = bounds
                .iter()
                .map(|b| b.map_or(inf, |r| r.to_f64() as f32))
                .collect();
            let kv = self.constant(DType::F32, shape.clone(), TensorData::F32(k));
            f = self.emit(Op::Binary(op), vec![f, kv])?;
        }
        Ok(f)
    }
}

//! Tables: any element-wise function of one quantized tensor, quantized, is a lookup
//! from input level to output level.
//!
//! An element-wise node ([`fqc_ir::scalar::is_elementwise`]) whose non-constant operands
//! are all the dequantized tensor `dq(x)` (or maps of it) and whose constants are
//! per-channel becomes a [`MapSym`]: `f(dq(x))`, remembered as the old nodes that
//! compute it (`hard_swish`, `x·sigmoid(x)`, `x·clip(x+3,0,6)/6`, a LeakyRelu after a
//! per-channel affine...). When the map meets its quantizer `q`, the pass evaluates
//! `q(f(level·s))` for every level of `x` (and every channel when a constant varies by
//! channel) with [`fqc_ir::scalar`] — the interpreter's own per-element arithmetic — and
//! emits the result as a `table` (≤ 256 entries per channel at ≤ 8 bits). Then:
//!
//! * a table that maps every level to itself (same type and scale) is dropped;
//! * a table read after another `table` is composed with it into one table;
//! * a table that is non-decreasing in every channel, read after a `requantize`, is
//!   composed with it into one `requantize`: output level `≥ k` iff input level `≥
//!   j(k)` (the first level the table sends to `≥ k`) iff the accumulator passes the
//!   input's `j(k)`-th threshold, so the new thresholds are a selection of the old ones
//!   (`i32::MIN`/`i32::MAX` for levels reached always/never, the convention of
//!   [`crate::thresholds`]).
//!
//! The same tables rescale the parts of a concat to the concat's quantizer
//! ([`State::quantize_parts`]): each part is `q(level·s_part)`.
//!
//! Soundness: the fake-quant graph computes, per element, `dequantize` (`level as f32 ·
//! s`), then the region's ops in f32, then `quantize`; the table holds exactly that
//! function of the level (same f32 operations in the same order), so it is bit-exact
//! with the fake-quant interpreter, not an approximation. The compositions are identities
//! of functions on the finite level sets.

use fqc_ir::scalar::{elementwise, is_elementwise, quantize_level};
use fqc_ir::{DType, Node, NodeData, Op, TensorData, Value, ValueDef, F32};

use crate::integerize::{State, Sym};
use crate::regions::per_channel_shape;
use crate::Result;

/// `f(dq(src))` for an element-wise function `f` computed by old nodes `nodes`.
#[derive(Clone, Debug)]
pub(crate) struct MapSym {
    /// The quantized source in the new graph, its type and scale.
    pub src: Value,
    pub dtype: DType,
    pub scale: F32,
    /// Old values that stand for `dq(src)`.
    pub roots: Vec<Value>,
    /// Old element-wise nodes in dependency order; the last defines the map's value.
    pub nodes: Vec<Node>,
}

/// A concat of dequantized tensors at different types or scales, before its quantizer.
#[derive(Clone, Debug)]
pub(crate) struct PartsSym {
    pub axis: u64,
    pub parts: Vec<(Value, DType, F32)>,
}

/// Where an operand of a map node comes from.
enum Arg {
    Root,
    Node(usize),
    /// A per-channel constant: one value, or one per channel.
    Const(Vec<f32>),
}

/// A map's nodes, ready to evaluate per channel and level.
struct Program {
    steps: Vec<(Op, Vec<Arg>)>,
    per_channel: bool,
}

impl Program {
    fn eval(&self, c: usize, x: f32) -> Option<f32> {
        let mut vals: Vec<f32> = Vec::with_capacity(self.steps.len());
        for (op, args) in &self.steps {
            let a: Vec<f32> = args
                .iter()
                .map(|a| match a {
                    Arg::Root => x,
                    Arg::Node(i) => vals[*i],
                    Arg::Const(k) => k[if k.len() == 1 { 0 } else { c }],
                })
                .collect();
            vals.push(elementwise(op, &a)?);
        }
        vals.last().copied()
    }
}

/// Storage of levels of a low-bit `dtype`.
fn level_data(dtype: DType, levels: Vec<i64>) -> TensorData {
    match dtype {
        DType::Int { signed: false, .. } => {
            TensorData::U8(levels.into_iter().map(|l| l as u8).collect())
        }
        _ => TensorData::I8(levels.into_iter().map(|l| l as i8).collect()),
    }
}

impl State<'_> {
    /// Element-wise node `d` as a map of one dequantized tensor, if it is one.
    pub(crate) fn map_rule(&mut self, d: &NodeData, ins: &[Sym]) -> Result<Option<Sym>> {
        if !is_elementwise(&d.op) {
            return Ok(None);
        }
        let mut src: Option<(Value, DType, F32)> = None;
        let (mut roots, mut nodes): (Vec<Value>, Vec<Node>) = (Vec::new(), Vec::new());
        for (&v, s) in d.inputs.iter().zip(ins) {
            let (key, r, n) = match s {
                Sym::Real { v: q, dtype, scale } => ((*q, *dtype, *scale), vec![v], vec![]),
                Sym::Map(m) => ((m.src, m.dtype, m.scale), m.roots.clone(), m.nodes.clone()),
                Sym::Const(_) => continue,
                _ => return Ok(None),
            };
            if src.is_some_and(|s| s != key) {
                return Ok(None);
            }
            src = Some(key);
            for x in r {
                if !roots.contains(&x) {
                    roots.push(x);
                }
            }
            // Both lists are in dependency order and hold all their region ancestors,
            // so appending the new ones keeps the order.
            for x in n {
                if !nodes.contains(&x) {
                    nodes.push(x);
                }
            }
        }
        let Some((src, dtype, scale)) = src else {
            return Ok(None);
        };
        let shape = self.g.ty(src).shape.clone();
        if self.g.ty(d.output).shape != shape {
            return Ok(None);
        }
        for (&v, s) in d.inputs.iter().zip(ins) {
            if let Sym::Const(_) = s {
                let ok = self.g.ty(v).dtype == DType::F32
                    && self.g.const_tensor(v).is_some_and(|t| {
                        t.as_f32().is_some() && per_channel_shape(&t.shape, &shape)
                    });
                if !ok {
                    return Ok(None);
                }
            }
        }
        nodes.push(self.node);
        Ok(Some(Sym::Map(Box::new(MapSym {
            src,
            dtype,
            scale,
            roots,
            nodes,
        }))))
    }

    fn program(&self, m: &MapSym) -> Result<Program> {
        let mut steps = Vec::with_capacity(m.nodes.len());
        let mut per_channel = false;
        for &n in &m.nodes {
            let d = self.g.node(n);
            let mut args = Vec::with_capacity(d.inputs.len());
            for &v in &d.inputs {
                let arg = if m.roots.contains(&v) {
                    Arg::Root
                } else if let Some(i) = m.nodes.iter().position(|&k| self.g.node(k).output == v) {
                    Arg::Node(i)
                } else {
                    let t = self
                        .g
                        .const_tensor(v)
                        .and_then(|t| t.as_f32())
                        .ok_or_else(|| {
                            self.err("a map operand is neither its source nor a constant")
                        })?;
                    per_channel |= t.len() > 1;
                    Arg::Const(t.to_vec())
                };
                args.push(arg);
            }
            steps.push((d.op.clone(), args));
        }
        Ok(Program { steps, per_channel })
    }

    /// `quantize(map)`: a table from source level to output level (see the module docs).
    pub(crate) fn quantize_map(
        &mut self,
        m: &MapSym,
        dtype: DType,
        scale: F32,
        offset: F32,
    ) -> Result<Sym> {
        let prog = self.program(m)?;
        let (qmin_in, qmax_in) = m
            .dtype
            .quant_range()
            .ok_or_else(|| self.err("map source is not low-bit"))?;
        let (qmin, qmax) = dtype
            .quant_range()
            .ok_or_else(|| self.err("quantizer has no level range"))?;
        let channels = if prog.per_channel {
            self.channels(m.src)?
        } else {
            1
        };
        let mut table = Vec::with_capacity(channels);
        for c in 0..channels {
            let mut row = Vec::new();
            for q in qmin_in..=qmax_in {
                let y = prog
                    .eval(c, q as f32 * m.scale.get())
                    .ok_or_else(|| self.err("map node is not element-wise"))?;
                row.push(quantize_level(y, scale.get(), offset.get(), qmin, qmax));
            }
            table.push(row);
        }
        let v = self.apply_table(m.src, m.dtype, m.scale, table, dtype, scale)?;
        Ok(Sym::Int { v, dtype, scale })
    }

    /// `quantize(concat(parts))`: each part rescaled to the quantizer by a table.
    pub(crate) fn quantize_parts(
        &mut self,
        p: &PartsSym,
        dtype: DType,
        scale: F32,
        offset: F32,
    ) -> Result<Sym> {
        let (qmin, qmax) = dtype
            .quant_range()
            .ok_or_else(|| self.err("quantizer has no level range"))?;
        let mut vs = Vec::with_capacity(p.parts.len());
        for &(v, dt, s) in &p.parts {
            let (lo, hi) = dt
                .quant_range()
                .ok_or_else(|| self.err("concat part is not low-bit"))?;
            let row = (lo..=hi)
                .map(|q| quantize_level(q as f32 * s.get(), scale.get(), offset.get(), qmin, qmax))
                .collect();
            vs.push(self.apply_table(v, dt, s, vec![row], dtype, scale)?);
        }
        let v = self.emit(Op::Concat { axis: p.axis }, vs)?;
        Ok(Sym::Int { v, dtype, scale })
    }

    /// Axis-1 extent of a new value.
    pub(crate) fn channels(&self, v: Value) -> Result<usize> {
        self.g
            .ty(v)
            .shape
            .0
            .get(1)
            .and_then(|d| d.fixed())
            .map(|c| c as usize)
            .ok_or_else(|| self.err("needs a fixed channel axis 1"))
    }

    /// `table[c][level − qmin(src)]` applied to `src`: dropped when the identity,
    /// composed into the producing `table` or `requantize` where possible, else a new
    /// `table` op.
    fn apply_table(
        &mut self,
        src: Value,
        src_dtype: DType,
        src_scale: F32,
        table: Vec<Vec<i64>>,
        dtype: DType,
        scale: F32,
    ) -> Result<Value> {
        let (qmin_in, _) = src_dtype.quant_range().unwrap_or((0, 0));
        let identity = table.iter().all(|row| {
            row.iter()
                .enumerate()
                .all(|(i, &l)| l == qmin_in + i as i64)
        });
        if identity && src_dtype == dtype && src_scale == scale {
            return Ok(src);
        }
        if dtype == DType::Ternary || !dtype.is_low_bit() {
            return Err(self.err(format!("a table cannot produce {dtype}")));
        }
        let producer = match self.g.value(src).def {
            ValueDef::Node(n) => Some(self.g.node(n).clone()),
            _ => None,
        };
        match producer {
            Some(p) if matches!(p.op, Op::Requantize { .. }) => {
                if let Some(v) = self.compose_requantize(&p, &table, dtype, scale)? {
                    return Ok(v);
                }
            }
            Some(p) if matches!(p.op, Op::Table { .. }) => {
                return self.compose_tables(&p, &table, dtype, scale);
            }
            _ => {}
        }
        let (c, l) = (table.len(), table[0].len());
        let shape = if c == 1 { vec![l] } else { vec![c, l] };
        let t = self.constant(dtype, shape, level_data(dtype, table.concat()));
        self.emit(Op::Table { dtype, scale }, vec![src, t])
    }

    /// `table ∘ table`: one table from the first table's input.
    fn compose_tables(
        &mut self,
        first: &NodeData,
        table: &[Vec<i64>],
        dtype: DType,
        scale: F32,
    ) -> Result<Value> {
        let Op::Table { dtype: mid, .. } = first.op else {
            return Err(self.err("not a table"));
        };
        let (qmin_mid, _) = mid.quant_range().unwrap_or((0, 0));
        let t1 = self
            .g
            .const_tensor(first.inputs[1])
            .ok_or_else(|| self.err("table without data"))?;
        let levels1: Vec<i64> = widen_levels(&t1.data);
        let l0 = *t1.shape.last().unwrap_or(&0);
        let c1 = if t1.shape.len() == 2 { t1.shape[0] } else { 1 };
        let c = c1.max(table.len());
        let mut out = Vec::with_capacity(c * l0);
        for ch in 0..c {
            let row1 = &levels1[(ch % c1) * l0..(ch % c1 + 1) * l0];
            let row2 = &table[ch % table.len()];
            for &m in row1 {
                out.push(row2[(m - qmin_mid) as usize]);
            }
        }
        let shape = if c == 1 { vec![l0] } else { vec![c, l0] };
        let t = self.constant(dtype, shape, level_data(dtype, out));
        self.emit(Op::Table { dtype, scale }, vec![first.inputs[0], t])
    }

    /// `table ∘ requantize` for a table non-decreasing in every channel: one
    /// `requantize` with a selection of the old thresholds; None if some row decreases.
    fn compose_requantize(
        &mut self,
        rq: &NodeData,
        table: &[Vec<i64>],
        dtype: DType,
        scale: F32,
    ) -> Result<Option<Value>> {
        if table.iter().any(|row| row.windows(2).any(|w| w[1] < w[0])) {
            return Ok(None);
        }
        let (Some(t), Some(desc)) = (
            self.g.const_tensor(rq.inputs[1]),
            self.g.const_tensor(rq.inputs[2]),
        ) else {
            return Ok(None);
        };
        let (TensorData::I32(t), TensorData::I8(desc)) = (&t.data, &desc.data) else {
            return Ok(None);
        };
        let (t, desc) = (t.clone(), desc.clone());
        let (qmin, qmax) = dtype
            .quant_range()
            .ok_or_else(|| self.err("quantizer has no level range"))?;
        let c = desc.len();
        let lin = t.len() / c.max(1);
        let mut out = Vec::with_capacity(c * (qmax - qmin) as usize);
        for ch in 0..c {
            let mut sorted = t[ch * lin..(ch + 1) * lin].to_vec();
            let descending = desc[ch] != 0;
            if descending {
                sorted.sort_unstable_by(|a, b| b.cmp(a));
            } else {
                sorted.sort_unstable();
            }
            let (never, always) = if descending {
                (i32::MIN, i32::MAX)
            } else {
                (i32::MAX, i32::MIN)
            };
            let row = &table[ch % table.len()];
            for k in qmin + 1..=qmax {
                out.push(match row.iter().position(|&l| l >= k) {
                    None => never,
                    Some(0) => always,
                    Some(j) => sorted[j - 1],
                });
            }
        }
        let tv = self.constant(
            DType::I32,
            vec![c, (qmax - qmin) as usize],
            TensorData::I32(out),
        );
        let dv = self.constant(DType::I8, vec![c], TensorData::I8(desc));
        let v = self.emit(Op::Requantize { dtype, scale }, vec![rq.inputs[0], tv, dv])?;
        Ok(Some(v))
    }
}

fn widen_levels(d: &TensorData) -> Vec<i64> {
    match d {
        TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        _ => Vec::new(),
    }
}

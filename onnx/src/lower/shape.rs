//! Import-time values: constants and the int64 shape arithmetic older exporters emit.
//!
//! PyTorch's older exports compute Reshape targets at run time:
//! `Shape → Gather → Unsqueeze → Concat → Reshape`, sometimes with `Cast`, `Slice`,
//! `Squeeze`, `Mul/Add/Div` on int64 and `ConstantOfShape`. fqc has no int64 ops, so such
//! subgraphs are evaluated here, on "known vectors" ([`SymVec`]): int64 scalars or 1-D
//! vectors whose elements are either concrete or linear in the symbolic batch
//! (`a·N + b`, [`Lin`]). `Shape` of a runtime tensor yields `[N, 1, 28, 28]`-like vectors,
//! and a Reshape target equal to `N` becomes `Dim::Batch`. Anything that would need a
//! runtime value (e.g. `Gather` on image data) is an error saying it must be computable
//! at import time. `Constant` and `ConstantOfShape` become IR constants, their sizes
//! checked before allocation.

use std::fmt;

use fqc_ir::{Dim, Tensor, TensorData};

use super::{Cx, LResult, Val};
use crate::proto::tensor_proto::DataType;
use crate::tensor::{checked_numel, decode, dtype_name};

/// Longest vector treated as a shape value.
pub(crate) const MAX_SYM_LEN: usize = 64;

/// `a·N + b` for the symbolic batch `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lin {
    pub a: i64,
    pub b: i64,
}

impl Lin {
    pub const BATCH: Lin = Lin { a: 1, b: 0 };

    pub fn c(b: i64) -> Lin {
        Lin { a: 0, b }
    }

    pub fn value(self) -> Option<i64> {
        (self.a == 0).then_some(self.b)
    }

    fn of_dim(d: Dim) -> Lin {
        match d {
            Dim::Batch => Lin::BATCH,
            Dim::Fixed(n) => Lin::c(n as i64),
        }
    }

    fn arith(self, op: &str, o: Lin) -> LResult<Lin> {
        let ovf = || format!("int64 overflow computing {self} {op} {o}");
        let r = match op {
            "Add" => Lin {
                a: self.a.checked_add(o.a).ok_or_else(ovf)?,
                b: self.b.checked_add(o.b).ok_or_else(ovf)?,
            },
            "Sub" => Lin {
                a: self.a.checked_sub(o.a).ok_or_else(ovf)?,
                b: self.b.checked_sub(o.b).ok_or_else(ovf)?,
            },
            "Mul" => {
                let (l, k) = match (self.value(), o.value()) {
                    (_, Some(k)) => (self, k),
                    (Some(k), _) => (o, k),
                    _ => return Err(format!("{self} * {o} is not linear in the batch size")),
                };
                Lin {
                    a: l.a.checked_mul(k).ok_or_else(ovf)?,
                    b: l.b.checked_mul(k).ok_or_else(ovf)?,
                }
            }
            _ => {
                let k = o
                    .value()
                    .ok_or_else(|| format!("{self} / {o} is not linear in the batch size"))?;
                if k == 0 {
                    return Err("integer division by zero".into());
                }
                match self.value() {
                    Some(v) => Lin::c(v.checked_div(k).ok_or_else(ovf)?),
                    None if self.a % k == 0 && self.b % k == 0 => Lin {
                        a: self.a / k,
                        b: self.b / k,
                    },
                    None => return Err(format!("{self} / {k} is not linear in the batch size")),
                }
            }
        };
        Ok(r)
    }
}

impl fmt::Display for Lin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.a, self.b) {
            (0, b) => write!(f, "{b}"),
            (1, 0) => write!(f, "N"),
            (a, 0) => write!(f, "{a}*N"),
            (1, b) => write!(f, "N{b:+}"),
            (a, b) => write!(f, "{a}*N{b:+}"),
        }
    }
}

/// An int64 scalar or vector known at import time (elements possibly `a·N + b`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SymVec {
    pub scalar: bool,
    pub elems: Vec<Lin>,
}

impl SymVec {
    pub fn vector(elems: Vec<Lin>) -> SymVec {
        SymVec {
            scalar: false,
            elems,
        }
    }

    /// All elements if none depends on the batch.
    pub fn concrete(&self) -> Option<Vec<i64>> {
        self.elems.iter().map(|l| l.value()).collect()
    }

    fn from_tensor(t: &Tensor) -> Option<SymVec> {
        if t.shape.len() > 1 || t.numel() > MAX_SYM_LEN {
            return None;
        }
        let elems: Vec<Lin> = match &t.data {
            TensorData::I64(v) => v.iter().map(|&x| Lin::c(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| Lin::c(x as i64)).collect(),
            _ => return None,
        };
        Some(SymVec {
            scalar: t.shape.is_empty(),
            elems,
        })
    }
}

impl fmt::Display for SymVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.elems.iter().map(|l| l.to_string()).collect();
        if self.scalar {
            write!(f, "{}", parts.join(","))
        } else {
            write!(f, "[{}]", parts.join(","))
        }
    }
}

impl Cx<'_> {
    /// Input `i` as a known int vector: a [`Val::Sym`] or a small int64/int32 constant.
    pub fn sym_opt(&self, i: usize) -> LResult<Option<SymVec>> {
        Ok(match self.val_opt(i)? {
            Some(Val::Sym(s)) => Some(s),
            Some(Val::Ir(v)) => self.imp.g.const_tensor(v).and_then(SymVec::from_tensor),
            None => None,
        })
    }

    /// Input `i` as a known int vector, or an error saying it must be computable.
    pub fn sym(&self, i: usize, what: &str) -> LResult<SymVec> {
        self.sym_opt(i)?.ok_or_else(|| {
            format!(
                "{what} (input `{}`) must be computable at import time (a constant or shape arithmetic)",
                self.input_name(i).unwrap_or_default()
            )
        })
    }

    /// Input `i` as concrete integers (no batch dependence).
    pub fn concrete_ints(&self, i: usize, what: &str) -> LResult<Vec<i64>> {
        let s = self.sym(i, what)?;
        s.concrete()
            .ok_or_else(|| format!("{what} must not depend on the batch size, got {s}"))
    }

    /// Whether input `i` is an integer value (a known vector or an int constant).
    pub fn is_int(&self, i: usize) -> LResult<bool> {
        Ok(match self.val_opt(i)? {
            Some(Val::Sym(_)) => true,
            Some(Val::Ir(v)) => matches!(self.ty(v).dtype, fqc_ir::DType::I64 | fqc_ir::DType::I32),
            None => false,
        })
    }
}

/// The known vector of input `i`, or an error naming the op that needs it.
fn sym_input(cx: &Cx, i: usize) -> LResult<SymVec> {
    cx.sym_opt(i)?.ok_or_else(|| {
        format!(
            "{} is only supported on shape values computable at import time; input `{}` is a runtime tensor",
            cx.op_type(),
            cx.input_name(i).unwrap_or_default()
        )
    })
}

/// `Constant`: any of the `value*` attribute forms.
pub(crate) fn constant(cx: &mut Cx) -> LResult<()> {
    let mut found: Vec<Tensor> = Vec::new();
    if let Some(tp) = cx.attrs.tensor("value")? {
        let mut tp = tp.clone();
        if tp.name().is_empty() {
            tp.name = cx.out_name(0);
        }
        let ext = cx.imp.ext.clone();
        found.push(decode(&mut tp, &ext, &mut cx.imp.budget).map_err(|e| e.to_string())?);
    }
    if let Some(f) = cx.attrs.float_opt("value_float")? {
        found.push(Tensor {
            shape: vec![],
            data: TensorData::F32(vec![f]),
        });
    }
    if let Some(v) = cx.attrs.floats("value_floats")? {
        found.push(Tensor {
            shape: vec![v.len()],
            data: TensorData::F32(v),
        });
    }
    if let Some(i) = cx.attrs.int_opt("value_int")? {
        found.push(Tensor {
            shape: vec![],
            data: TensorData::I64(vec![i]),
        });
    }
    if let Some(v) = cx.attrs.ints("value_ints")? {
        found.push(Tensor {
            shape: vec![v.len()],
            data: TensorData::I64(v),
        });
    }
    for unsupported in ["value_string", "value_strings", "sparse_value"] {
        if cx.attrs.has(unsupported) {
            return Err(format!("attribute `{unsupported}` is not supported"));
        }
    }
    if found.len() != 1 {
        return Err(format!(
            "expected exactly one `value*` attribute, got {}",
            found.len()
        ));
    }
    let t = found.pop().expect("one tensor");
    let v = cx.add_const(cx.out_name(0), t)?;
    cx.set_out(0, Val::Ir(v));
    Ok(())
}

/// `ConstantOfShape`: a filled tensor whose size is checked before allocation.
pub(crate) fn constant_of_shape(cx: &mut Cx) -> LResult<()> {
    let dims = cx.concrete_ints(0, "the shape")?;
    let what = cx.out_name(0).unwrap_or_else(|| cx.name.clone());
    let n = checked_numel(&what, &dims).map_err(|e| e.to_string())?;
    let fill = match cx.attrs.tensor("value")? {
        None => TensorData::F32(vec![0.0]),
        Some(tp) => {
            let mut tp = tp.clone();
            let ext = cx.imp.ext.clone();
            let t = decode(&mut tp, &ext, &mut cx.imp.budget).map_err(|e| e.to_string())?;
            if t.numel() != 1 {
                return Err(format!(
                    "attribute `value` must hold one element, got {}",
                    t.numel()
                ));
            }
            t.data
        }
    };
    // Reserve the elements before allocating them.
    cx.imp
        .budget
        .take(&what, n as u64)
        .map_err(|e| e.to_string())?;
    let data = match fill {
        TensorData::F32(v) => TensorData::F32(vec![v[0]; n]),
        TensorData::I64(v) => TensorData::I64(vec![v[0]; n]),
        TensorData::I32(v) => TensorData::I32(vec![v[0]; n]),
        TensorData::I8(v) => TensorData::I8(vec![v[0]; n]),
        TensorData::U8(v) => TensorData::U8(vec![v[0]; n]),
    };
    let t = Tensor {
        shape: dims.iter().map(|&d| d as usize).collect(),
        data,
    };
    let ty = fqc_ir::TensorType::new(crate::tensor::data_dtype(&t.data), t.static_shape());
    let v = cx.imp.g.add_const(cx.out_name(0), ty, t);
    cx.set_out(0, Val::Ir(v));
    Ok(())
}

/// `Shape` (with opset-15 `start`/`end`).
pub(crate) fn shape(cx: &mut Cx) -> LResult<()> {
    let dims: Vec<Lin> = match cx.val(0)? {
        Val::Ir(v) => cx.ty(v).shape.0.iter().map(|&d| Lin::of_dim(d)).collect(),
        Val::Sym(s) => {
            if s.scalar {
                vec![]
            } else {
                vec![Lin::c(s.elems.len() as i64)]
            }
        }
    };
    let r = dims.len() as i64;
    let clamp = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) };
    let start = clamp(cx.attrs.int("start", 0)?) as usize;
    let end = match cx.attrs.int_opt("end")? {
        Some(e) => clamp(e) as usize,
        None => r as usize,
    };
    let elems = if start < end {
        dims[start..end].to_vec()
    } else {
        vec![]
    };
    cx.set_out(0, Val::Sym(SymVec::vector(elems)));
    Ok(())
}

/// `Gather` on a known vector with constant indices.
pub(crate) fn gather(cx: &mut Cx) -> LResult<()> {
    let data = sym_input(cx, 0)?;
    let axis = cx.attrs.int("axis", 0)?;
    if data.scalar || (axis != 0 && axis != -1) {
        return Err("Gather on a shape value must index a 1-D vector along axis 0".into());
    }
    let idx = cx.sym(1, "the indices")?;
    let ids = idx
        .concrete()
        .ok_or_else(|| format!("indices must not depend on the batch size, got {idx}"))?;
    let n = data.elems.len() as i64;
    let elems = ids
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(data.elems[j as usize])
            } else {
                Err(format!("index {i} is out of range for {data}"))
            }
        })
        .collect::<LResult<Vec<_>>>()?;
    cx.set_out(
        0,
        Val::Sym(SymVec {
            scalar: idx.scalar,
            elems,
        }),
    );
    Ok(())
}

/// Converts a constant's elements to ONNX type `to` (float and integer types only).
fn convert(t: &Tensor, to: i32) -> LResult<Tensor> {
    let f: Vec<f64> = match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I64(v) => {
            if let Ok(DataType::Int64) = DataType::try_from(to) {
                return Ok(t.clone());
            }
            v.iter().map(|&x| x as f64).collect()
        }
        TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
    };
    let data = match DataType::try_from(to) {
        Ok(DataType::Float) => TensorData::F32(f.iter().map(|&x| x as f32).collect()),
        Ok(DataType::Int64) => TensorData::I64(f.iter().map(|&x| x as i64).collect()),
        Ok(DataType::Int32) => TensorData::I32(f.iter().map(|&x| x as i32).collect()),
        Ok(DataType::Int8) => TensorData::I8(f.iter().map(|&x| x as i8).collect()),
        Ok(DataType::Uint8) => TensorData::U8(f.iter().map(|&x| x as u8).collect()),
        _ => return Err(format!("Cast to {} is not supported", dtype_name(to))),
    };
    Ok(Tensor {
        shape: t.shape.clone(),
        data,
    })
}

/// `Cast`: identity on floats, exact on known vectors, evaluated on constants.
pub(crate) fn cast(cx: &mut Cx) -> LResult<()> {
    let to = cx
        .attrs
        .int_opt("to")?
        .ok_or("attribute `to` is required")? as i32;
    cx.attrs.ignore("saturate");
    let is_int_target = matches!(
        DataType::try_from(to),
        Ok(DataType::Int64 | DataType::Int32)
    );
    if let Val::Sym(s) = cx.val(0)? {
        if is_int_target {
            cx.set_out(0, Val::Sym(s));
            return Ok(());
        }
    }
    let v = cx.tensor(0)?;
    if let Some(t) = cx.imp.g.const_tensor(v) {
        let t = convert(t, to)?;
        if let (Some(s), true) = (SymVec::from_tensor(&t), is_int_target) {
            cx.set_out(0, Val::Sym(s));
            return Ok(());
        }
        let out = cx.add_const(cx.out_name(0), t)?;
        cx.set_out(0, Val::Ir(out));
        return Ok(());
    }
    let from = cx.ty(v).dtype;
    if from == fqc_ir::DType::F32 && matches!(DataType::try_from(to), Ok(DataType::Float)) {
        cx.set_out(0, Val::Ir(v));
        return Ok(());
    }
    Err(format!(
        "Cast of runtime tensor `{}` ({from}) to {} is not supported",
        cx.input_name(0).unwrap_or_default(),
        dtype_name(to)
    ))
}

/// `Slice` of a known vector (attributes before opset 10, inputs after).
pub(crate) fn slice(cx: &mut Cx) -> LResult<()> {
    let data = sym_input(cx, 0)?;
    if data.scalar {
        return Err("cannot slice a scalar".into());
    }
    let (starts, ends, axes, steps) = if cx.opset() < 10 {
        let s = cx
            .attrs
            .ints("starts")?
            .ok_or("attribute `starts` is required")?;
        let e = cx
            .attrs
            .ints("ends")?
            .ok_or("attribute `ends` is required")?;
        (s, e, cx.attrs.ints("axes")?, None)
    } else {
        let s = cx.concrete_ints(1, "starts")?;
        let e = cx.concrete_ints(2, "ends")?;
        let a = match cx.input_name(3) {
            Some(_) => Some(cx.concrete_ints(3, "axes")?),
            None => None,
        };
        let st = match cx.input_name(4) {
            Some(_) => Some(cx.concrete_ints(4, "steps")?),
            None => None,
        };
        (s, e, a, st)
    };
    if starts.len() != 1 || ends.len() != 1 {
        return Err("Slice on a shape value must slice exactly one axis".into());
    }
    if let Some(a) = &axes {
        if a.len() != 1 || !(a[0] == 0 || a[0] == -1) {
            return Err(format!("axes {a:?} out of range for a 1-D shape value"));
        }
    }
    let step = steps.map_or(Ok(1), |s| {
        if s.len() == 1 && s[0] != 0 {
            Ok(s[0])
        } else {
            Err(format!("invalid steps {s:?}"))
        }
    })?;
    let n = data.elems.len() as i64;
    // NumPy/ONNX clamping rules.
    let norm = |x: i64, lo: i64, hi: i64| {
        let x = if x < 0 { x.saturating_add(n) } else { x };
        x.clamp(lo, hi)
    };
    let mut out = Vec::new();
    if step > 0 {
        let (s, e) = (norm(starts[0], 0, n), norm(ends[0], 0, n));
        let mut i = s;
        while i < e {
            out.push(data.elems[i as usize]);
            i = i.saturating_add(step);
        }
    } else {
        let (s, e) = (norm(starts[0], -1, n - 1), norm(ends[0], -1, n - 1));
        let mut i = s;
        while i > e {
            out.push(data.elems[i as usize]);
            i = i.saturating_add(step);
        }
    }
    cx.set_out(0, Val::Sym(SymVec::vector(out)));
    Ok(())
}

/// Add/Sub/Mul/Div on known vectors (broadcasting a scalar or 1-element vector).
pub(crate) fn int_binary(cx: &mut Cx) -> LResult<()> {
    let op = cx.op_type().to_string();
    if cx.opset() < 7 {
        cx.attrs.ignore("broadcast");
        if cx.attrs.int_opt("axis")?.is_some_and(|a| a != 0) {
            return Err("legacy `axis` is not supported on shape values".into());
        }
    }
    let a = sym_input(cx, 0)?;
    let b = sym_input(cx, 1)?;
    let n = a.elems.len().max(b.elems.len());
    let pick = |s: &SymVec, i: usize| -> LResult<Lin> {
        match s.elems.len() {
            1 => Ok(s.elems[0]),
            l if l == n => Ok(s.elems[i]),
            _ => Err(format!("shape values {a} and {b} do not broadcast")),
        }
    };
    let elems = (0..n)
        .map(|i| pick(&a, i)?.arith(&op, pick(&b, i)?))
        .collect::<LResult<Vec<_>>>()?;
    cx.set_out(
        0,
        Val::Sym(SymVec {
            scalar: a.scalar && b.scalar,
            elems,
        }),
    );
    Ok(())
}

/// Concat of known vectors along axis 0.
pub(crate) fn int_concat(cx: &mut Cx) -> LResult<()> {
    let axis = cx.attrs.int("axis", 0)?;
    if axis != 0 && axis != -1 {
        return Err(format!("axis {axis} is out of range for 1-D shape values"));
    }
    let mut elems = Vec::new();
    for i in 0..cx.num_inputs() {
        if cx.input_name(i).is_none() {
            continue;
        }
        let s = sym_input(cx, i)?;
        if s.scalar {
            return Err("cannot concatenate scalars".into());
        }
        elems.extend(s.elems);
        if elems.len() > MAX_SYM_LEN {
            return Err(format!(
                "shape values longer than {MAX_SYM_LEN} elements are not supported"
            ));
        }
    }
    cx.set_out(0, Val::Sym(SymVec::vector(elems)));
    Ok(())
}

/// Reshape/Squeeze/Unsqueeze of a known vector to rank 0 or 1.
pub(crate) fn sym_reshape(cx: &mut Cx, s: SymVec, to_scalar: bool) -> LResult<()> {
    if to_scalar && s.elems.len() != 1 {
        return Err(format!("cannot make a scalar of {s}"));
    }
    cx.set_out(
        0,
        Val::Sym(SymVec {
            scalar: to_scalar,
            elems: s.elems,
        }),
    );
    Ok(())
}

//! fqc's JIT: an integer-only graph (after `integerize`) to Cranelift machine code.
//!
//! [`compile`] plans the graph (`plan.rs`, `lower.rs`: buffers, constant operands,
//! overflow bounds), emits one Cranelift function per integer node specialised to its
//! static shapes and constant weights (`emit/`), and links them in one JIT module.
//! [`CompiledGraph::run`] binds f32 inputs (any batch size: the batch is a kernel
//! parameter), allocates every buffer for that run, and executes the steps in schedule
//! order: the input `quantize` and output `dequantize` in Rust (`boundary.rs`), every
//! other node by calling its kernel (`exec.rs`, the crate's only `unsafe`).
//!
//! JIT'd nodes: `qconv` (dense i8x16 dot-product form, or ternary add/sub form),
//! `qgemm` (as a 1×1 `qconv`), `requantize`, same-shape `scaled_add`, `maxpool`,
//! `sumpool`, `global_maxpool`, `global_sumpool`; `reshape`/`flatten` alias buffers.
//! Everything else is a [`CodegenError::Unsupported`] naming the node. Results equal
//! `fqc_ir::interp::run` bit for bit (the tests check it).

mod boundary;
mod emit;
mod error;
#[allow(unsafe_code)]
mod exec;
mod lower;
mod plan;

use fqc_ir::{Dim, Graph, Tensor, TensorData};

pub use error::{CodegenError, Result};

use emit::conv::Form;
use emit::{Elem, Jit};
use exec::{Code, Extent};
use plan::{BufElem, Kernel, Plan, Step};

/// Options of [`compile_with`].
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// Keep the Cranelift IR text of every kernel ([`CompiledGraph::ir`]).
    pub keep_ir: bool,
}

/// A graph compiled to machine code.
#[derive(Debug)]
pub struct CompiledGraph {
    plan: Plan,
    /// Entry address of each step's kernel (0 for Rust-run steps).
    entries: Vec<usize>,
    inputs: Vec<(String, Vec<Dim>)>,
    ir: Vec<(String, String)>,
    forms: Vec<(String, &'static str)>,
    code: Code,
}

/// Compiles `g` with default options.
pub fn compile(g: &Graph) -> Result<CompiledGraph> {
    compile_with(g, &CompileOptions::default())
}

fn emit_kernel(b: &mut cranelift_frontend::FunctionBuilder, k: &Kernel, p: &emit::Params) {
    match k {
        Kernel::Conv(s, Form::Dense) => emit::conv::emit_dense(b, s, p),
        Kernel::Conv(s, Form::Ternary) => emit::conv::emit_ternary(b, s, p),
        Kernel::Requant(s) => emit::misc::emit_requantize(b, s, p),
        Kernel::Add(s) => emit::misc::emit_scaled_add(b, s, p),
        Kernel::Pool(s) => emit::misc::emit_pool(b, s, p),
        Kernel::Global { c, plane, kind, io } => {
            emit::misc::emit_global(b, (*c, *plane), *kind, *io, p)
        }
    }
}

fn kernel_form(k: &Kernel) -> &'static str {
    match k {
        Kernel::Conv(_, Form::Dense) => "dense",
        Kernel::Conv(_, Form::Ternary) => "ternary",
        Kernel::Requant(_) => "requantize",
        Kernel::Add(_) => "scaled_add",
        Kernel::Pool(_) => "pool",
        Kernel::Global { .. } => "global_pool",
    }
}

/// Compiles `g` (see the crate docs).
pub fn compile_with(g: &Graph, opts: &CompileOptions) -> Result<CompiledGraph> {
    let plan = plan::plan(g)?;
    let mut jit = Jit::new(opts.keep_ir)?;
    let mut ids = Vec::new();
    let mut forms = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        if let Step::Kernel { name, kernel, .. } = step {
            let id = jit.define(&format!("k{i}"), |b, p| emit_kernel(b, kernel, p))?;
            ids.push((i, id));
            forms.push((name.clone(), kernel_form(kernel)));
        }
    }
    let ir = std::mem::take(&mut jit.ir);
    let fids: Vec<_> = ids.iter().map(|&(_, id)| id).collect();
    let (module, addrs) = jit.finish(&fids)?;
    let mut entries = vec![0; plan.steps.len()];
    for (&(i, _), a) in ids.iter().zip(addrs) {
        entries[i] = a;
    }
    let inputs = g
        .inputs()
        .iter()
        .map(|&v| {
            let name = g.value(v).name.clone().unwrap_or_default();
            (name, g.ty(v).shape.0.clone())
        })
        .collect();
    Ok(CompiledGraph {
        plan,
        entries,
        inputs,
        ir,
        forms,
        code: Code::new(module),
    })
}

fn int_elems(buf: &[u8], e: Elem) -> Box<dyn Iterator<Item = i32> + '_> {
    match e {
        Elem::U8 => Box::new(buf.iter().map(|&v| i32::from(v))),
        Elem::I8 => Box::new(buf.iter().map(|&v| i32::from(v as i8))),
        Elem::I32 => Box::new(
            buf.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
    }
}

impl CompiledGraph {
    /// `(kernel name, Cranelift IR)` per kernel, if compiled with `keep_ir`.
    pub fn ir(&self) -> &[(String, String)] {
        &self.ir
    }

    /// `(node name, form)` per JIT'd node: `dense`, `ternary`, `requantize`, ….
    pub fn kernel_forms(&self) -> &[(String, &'static str)] {
        &self.forms
    }

    /// Checks the inputs (f32, shapes) and returns the batch size.
    fn bind(&self, inputs: &[Tensor]) -> Result<usize> {
        if inputs.len() != self.inputs.len() {
            return Err(CodegenError::Input(format!(
                "the graph takes {} input(s), got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        let mut batch = None;
        for ((name, dims), t) in self.inputs.iter().zip(inputs) {
            let bad = || CodegenError::Input(format!("input `{name}`: wrong type or shape"));
            if !matches!(t.data, TensorData::F32(_)) || t.shape.len() != dims.len() {
                return Err(bad());
            }
            if t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(t.numel()) {
                return Err(bad());
            }
            for (d, &n) in dims.iter().zip(&t.shape) {
                match d {
                    Dim::Fixed(f) if *f != n as u64 => return Err(bad()),
                    Dim::Fixed(_) => {}
                    Dim::Batch if batch.is_some_and(|b| b != n) || n == 0 => {
                        return Err(CodegenError::Input(format!(
                            "input `{name}`: batch size {n} is zero or differs from another input"
                        )))
                    }
                    Dim::Batch => batch = Some(n),
                }
            }
        }
        Ok(batch.unwrap_or(1))
    }

    /// Runs the graph on f32 `inputs` (bound to the graph inputs in order).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let batch = self.bind(inputs)?;
        let too_big = || CodegenError::Input(format!("batch {batch} is too large"));
        let mut bufs = Vec::with_capacity(self.plan.bufs.len());
        for b in &self.plan.bufs {
            let n = b
                .bytes(batch)
                .filter(|&n| n <= 1 << 33)
                .ok_or_else(too_big)?;
            bufs.push(vec![0u8; n]);
        }
        for (i, step) in self.plan.steps.iter().enumerate() {
            self.step(i, step, inputs, batch, &mut bufs)?;
        }
        let mut outs = Vec::new();
        for (id, axis0, rest) in &self.plan.outputs {
            let b = &self.plan.bufs[*id];
            let mut shape = vec![axis0.resolve(batch as u64) as usize];
            shape.extend(rest);
            let data = &bufs[*id];
            let data = match b.elem {
                BufElem::F32 => TensorData::F32(
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                BufElem::Int(Elem::U8) => TensorData::U8(data.clone()),
                BufElem::Int(Elem::I8) => TensorData::I8(data.iter().map(|&v| v as i8).collect()),
                BufElem::Int(Elem::I32) => TensorData::I32(int_elems(data, Elem::I32).collect()),
            };
            outs.push(Tensor { shape, data });
        }
        Ok(outs)
    }

    fn step(
        &self,
        i: usize,
        step: &Step,
        inputs: &[Tensor],
        batch: usize,
        bufs: &mut [Vec<u8>],
    ) -> Result<()> {
        match step {
            Step::Quantize {
                input,
                out,
                dtype,
                scale,
                offset,
            } => {
                let x = inputs[*input].as_f32().unwrap_or_default();
                boundary::quantize(x, *dtype, *scale, *offset, &mut bufs[*out]);
            }
            Step::Dequantize { x, out, deq } => {
                let BufElem::Int(e) = self.plan.bufs[*x].elem else {
                    return Err(CodegenError::Invalid("dequantize of f32".into()));
                };
                let mut o = std::mem::take(&mut bufs[*out]);
                boundary::dequantize(int_elems(&bufs[*x], e), deq, &mut o);
                bufs[*out] = o;
            }
            Step::Kernel {
                a,
                b,
                out,
                consts,
                scratch,
                ..
            } => {
                let ob = &self.plan.bufs[*out];
                let n = ob.axis0.resolve(batch as u64) as usize;
                let bytes = |id: usize| self.plan.bufs[id].bytes(batch).unwrap_or(usize::MAX);
                let need = Extent {
                    a: bytes(*a),
                    b: b.map_or(0, bytes),
                    out: bytes(*out),
                    k: consts.len(),
                    scratch: *scratch,
                };
                let mut o = std::mem::take(&mut bufs[*out]);
                let mut sc = vec![0u8; *scratch];
                let r = exec::call(
                    &self.code,
                    (self.entries[i], n),
                    need,
                    (&bufs[*a], b.map(|b| bufs[b].as_slice())),
                    &mut o,
                    (consts, &mut sc),
                );
                bufs[*out] = o;
                r?;
            }
        }
        Ok(())
    }
}

//! fqc's JIT: an integer-only graph (after `integerize`) to Cranelift machine code.
//!
//! [`compile`] plans the graph (`plan.rs`, `lower.rs`: buffers, constant operands,
//! overflow bounds), emits one Cranelift function per integer node specialised to its
//! static shapes and constant weights (`emit/`), and links them in one JIT module.
//! [`CompiledGraph::run`] binds f32 inputs (any batch size: the batch is a kernel
//! parameter), allocates every buffer for that run, and executes the steps in schedule
//! order; [`CompiledGraph::run_in`] does the same in a caller-owned [`Arena`] that is
//! reused across runs (it grows only for a larger batch), so a steady-state run
//! allocates no activation buffer: the input `quantize` and output `dequantize` in
//! Rust (`boundary.rs`), every other node by calling its kernel (`exec.rs`; the
//! crate's `unsafe` is there and in `native/`).
//!
//! **Native steps.** On a CPU with AVX2 (detected at compile time of the graph) some
//! steps are not JIT'd but call Rust `std::arch` AVX2 code (`native/`), which measured
//! faster and costs no compile time: a `qconv` with at least 16 output pixels and 2
//! output channels per group (panel packed straight from the image, `vpmaddubsw`
//! summed in i16 where provably exact, else `vpmaddwd`), a `qgemm` as a
//! matrix-vector product per image (`native/gemv.rs`), a `requantize` of at most 16
//! thresholds fused into the convolution or `scaled_add` computing its operand, or on
//! its own (`fuse.rs`, `native/levels.rs`), and `maxpool`/`sumpool` of low-bit tensors
//! (`native/pool.rs`). [`CompileOptions::force_form`] picks a convolution form
//! explicitly; forcing a JIT'd form also keeps every other step JIT'd.
//!
//! JIT'd nodes: `qconv` (dense form: i16 multiply-add pairs (`pmaddwd`) over
//! 4-output-channel blocks, reading stride-1 rows in place; or ternary add/sub form),
//! `qgemm` (as a 1×1 `qconv`), `requantize`, same-shape `scaled_add`, `maxpool`,
//! `sumpool`, `global_maxpool`, `global_sumpool`; `reshape`/`flatten` alias buffers.
//! Everything else is a [`CodegenError::Unsupported`] naming the node. Results equal
//! `fqc_ir::interp::run` bit for bit (the tests check it).

#[allow(unsafe_code)]
mod boundary;
mod emit;
mod error;
#[allow(unsafe_code)]
mod exec;
mod fuse;
mod interp_step;
mod lower;
#[allow(unsafe_code)]
mod native;
mod plan;

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Use this form for every `qconv`/`qgemm` instead of the automatic choice (for
    /// tests and measurements); a forced JIT form (`Dense`, `Ternary`) also keeps the
    /// other steps (`requantize`, pools) JIT'd. A form that cannot apply (ternary code for non-ternary
    /// weights, the native kernel without AVX2, path A where it would not be exact)
    /// falls back to the automatic choice (path B for path A).
    pub force_form: Option<ConvForm>,
}

/// The code a convolution (`qconv`, or `qgemm` as a 1×1 convolution) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvForm {
    /// Native AVX2 kernel, u8 × i8 pairs summed in i16 (`vpmaddubsw`), where exact.
    NativeA,
    /// Native AVX2 kernel, i16 × i16 pairs summed in i32 (`vpmaddwd`).
    NativeB,
    /// JIT'd dense i16 multiply-add code.
    Dense,
    /// JIT'd ternary add/sub code (weights in {-1, 0, 1} only).
    Ternary,
}

/// Distinct id of each [`CompiledGraph`], so an [`Arena`] knows whose buffers it holds.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The run-time buffers of one [`CompiledGraph`]: one byte buffer per planned value,
/// sized for the largest batch run so far, each kernel's scratch (whose zero padding
/// is written once, here, and never touched by the kernels; see `emit/conv.rs`), one
/// work area all native convolutions share (so it stays in cache), and optionally
/// helper threads that share each native convolution's output channels.
///
/// Reusing an arena across [`CompiledGraph::run_in`] calls makes a run allocate only
/// its output tensors. An arena given to a different graph is rebuilt for it.
#[derive(Debug, Default)]
pub struct Arena {
    owner: u64,
    batch: usize,
    bufs: Vec<Vec<u8>>,
    scratch: Vec<Vec<u8>>,
    /// The work area every native convolution shares (im2col matrix and panel).
    work: Vec<u8>,
    /// Helpers that share each native convolution's output channels
    /// ([`Arena::split_channels`]).
    split: Option<ChannelSplit>,
}

/// Helper threads of an [`Arena`] and a panel buffer for each.
#[derive(Debug)]
struct ChannelSplit {
    pool: rayon::ThreadPool,
    panels: Vec<Vec<u8>>,
    /// Layers with fewer MACs per image run on the caller's thread alone.
    min_macs: usize,
}

impl Arena {
    /// An empty arena (buffers are allocated by the first run).
    pub fn new() -> Arena {
        Arena::default()
    }

    /// The largest batch the arena holds buffers for (0 before the first run).
    pub fn batch_capacity(&self) -> usize {
        self.batch
    }

    /// Bytes held by the arena's buffers.
    pub fn bytes(&self) -> usize {
        let own: usize = self.bufs.iter().chain(&self.scratch).map(Vec::len).sum();
        let helpers: usize = self
            .split
            .iter()
            .flat_map(|s| &s.panels)
            .map(Vec::len)
            .sum();
        own + self.work.len() + helpers
    }

    /// Splits the output channels of every native convolution of at least 16 Mi MACs
    /// per image (smaller ones cost more to hand over than they gain, see
    /// `native::MIN_SPLIT_MACS`) between `threads` threads (the caller's and
    /// `threads − 1` helpers kept for the arena's life); 0 or 1 runs every step on the
    /// caller's thread. For batches smaller than the thread count, where splitting the
    /// batch leaves threads idle. Results are bit-identical: each output channel is
    /// computed by one thread, exactly as without the split.
    pub fn split_channels(&mut self, threads: usize) -> Result<()> {
        self.split_channels_from(threads, native::MIN_SPLIT_MACS)
    }

    /// As [`Arena::split_channels`], splitting every native convolution of at least
    /// `min_macs` MACs per image (0: all of them).
    pub fn split_channels_from(&mut self, threads: usize, min_macs: usize) -> Result<()> {
        if threads <= 1 {
            self.split = None;
            return Ok(());
        }
        if let Some(s) = self
            .split
            .as_mut()
            .filter(|s| s.panels.len() + 1 == threads)
        {
            s.min_macs = min_macs;
            return Ok(());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads - 1)
            .thread_name(|i| format!("fqc-split-{i}"))
            .build()
            .map_err(|e| CodegenError::Invalid(format!("cannot start helper threads: {e}")))?;
        self.split = Some(ChannelSplit {
            pool,
            panels: vec![Vec::new(); threads - 1],
            min_macs,
        });
        // The helpers' panels are sized by the next run.
        self.owner = 0;
        Ok(())
    }
}

/// Most bytes of activation buffers one arena may hold (all steps, the whole batch):
/// a batch that needs more is refused before anything is allocated.
pub const MAX_ARENA_BYTES: u64 = 1 << 35;

/// Bytes of memory the system can still give (`MemAvailable` of `/proc/meminfo`), where
/// that is known. Linux overcommits: an allocation larger than this may succeed and the
/// process be killed later, when the buffers are touched, so arenas are checked first.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `n` zero bytes, or an error instead of an abort when the allocation fails.
fn zeroed(n: usize) -> std::result::Result<Vec<u8>, std::collections::TryReserveError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)?;
    v.resize(n, 0);
    Ok(v)
}

/// A graph compiled to machine code.
///
/// `Send + Sync`: the machine code is immutable after `compile` returns, and a run
/// keeps all mutable state in its own [`Arena`] (see `exec.rs`).
#[derive(Debug)]
pub struct CompiledGraph {
    id: u64,
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
        Kernel::Native(_)
        | Kernel::NativeRequant(_)
        | Kernel::NativePool(_)
        | Kernel::NativeGemv(_) => {
            unreachable!("native kernels are not JIT'd")
        }
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
        Kernel::Native(nc) => nc.form_name(),
        Kernel::NativeRequant(nr) => nr.form_name(),
        Kernel::NativePool(_) => "native-pool",
        Kernel::NativeGemv(nv) => nv.form_name(),
    }
}

/// Compiles `g` (see the crate docs).
pub fn compile_with(g: &Graph, opts: &CompileOptions) -> Result<CompiledGraph> {
    let plan = plan::plan(g, opts.force_form)?;
    let mut jit = Jit::new(opts.keep_ir)?;
    let mut ids = Vec::new();
    let mut forms = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        if let Step::Interp { node, .. } = step {
            forms.push((node.name.clone(), "interp"));
        }
        if let Step::Kernel { name, kernel, .. } = step {
            if kernel.is_native() {
                forms.push((name.clone(), kernel_form(kernel)));
                continue;
            }
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
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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

    /// The graph inputs: name and static shape (axis 0 may be the batch).
    pub fn inputs(&self) -> &[(String, Vec<Dim>)] {
        &self.inputs
    }

    /// Runs the graph on f32 `inputs` (bound to the graph inputs in order), in buffers
    /// allocated for this run.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_in(&mut Arena::new(), inputs)
    }

    /// Sizes `arena` for `batch`: keeps its buffers when they are this graph's and big
    /// enough, else allocates them (zeroed) for `batch`.
    fn prepare(&self, arena: &mut Arena, batch: usize) -> Result<()> {
        let fresh = arena.owner != self.id || arena.bufs.len() != self.plan.bufs.len();
        if fresh {
            arena.scratch = self
                .plan
                .steps
                .iter()
                .map(|s| match s {
                    Step::Kernel { scratch, .. } => vec![0u8; *scratch],
                    _ => Vec::new(),
                })
                .collect();
            let work = self.plan.steps.iter().map(|s| match s {
                Step::Kernel { kernel, .. } => match &**kernel {
                    Kernel::Native(nc) => nc.work_bytes(),
                    _ => 0,
                },
                _ => 0,
            });
            arena.work = vec![0u8; work.max().unwrap_or(0)];
            if let Some(split) = &mut arena.split {
                let bytes = self.plan.steps.iter().map(|s| match s {
                    Step::Kernel { kernel, .. } => match &**kernel {
                        Kernel::Native(nc) => nc.helper_bytes(),
                        _ => 0,
                    },
                    _ => 0,
                });
                let bytes = bytes.max().unwrap_or(0);
                split.panels.iter_mut().for_each(|p| *p = vec![0u8; bytes]);
            }
        }
        if fresh || batch > arena.batch {
            let sizes: Option<Vec<usize>> = self.plan.bufs.iter().map(|b| b.bytes(batch)).collect();
            let total = sizes
                .as_ref()
                .and_then(|s| s.iter().try_fold(0usize, |a, &n| a.checked_add(n)))
                .filter(|&t| t as u64 <= MAX_ARENA_BYTES)
                .ok_or_else(|| {
                    CodegenError::Input(format!(
                        "batch {batch} needs more than {} GiB of activation buffers",
                        MAX_ARENA_BYTES >> 30
                    ))
                })?;
            if let Some(avail) = available_memory().filter(|&a| total as u64 > a) {
                return Err(CodegenError::Input(format!(
                    "batch {batch} needs {:.1} GiB of activation buffers; this machine has \
                     {:.1} GiB available",
                    total as f64 / f64::from(1u32 << 30),
                    avail as f64 / f64::from(1u32 << 30)
                )));
            }
            let mut bufs = Vec::with_capacity(self.plan.bufs.len());
            for n in sizes.unwrap_or_default() {
                bufs.push(zeroed(n).map_err(|_| {
                    CodegenError::Input(format!(
                        "batch {batch}: cannot allocate {total} bytes of activation buffers"
                    ))
                })?);
            }
            arena.bufs = bufs;
            arena.batch = batch;
            arena.owner = self.id;
        }
        Ok(())
    }

    /// Runs the graph on f32 `inputs` (bound to the graph inputs in order), reusing the
    /// buffers of `arena` (grown first if this batch is larger than any before).
    pub fn run_in(&self, arena: &mut Arena, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let batch = self.bind(inputs)?;
        self.prepare(arena, batch)?;
        for (i, step) in self.plan.steps.iter().enumerate() {
            self.step(i, step, inputs, batch, arena)?;
        }
        let mut outs = Vec::new();
        for (id, axis0, rest) in &self.plan.outputs {
            let b = &self.plan.bufs[*id];
            let mut shape = vec![axis0.resolve(batch as u64) as usize];
            shape.extend(rest);
            let data = &arena.bufs[*id][..self.bytes(*id, batch)];
            let data = match b.elem {
                BufElem::F32 => TensorData::F32(
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                BufElem::Int(Elem::U8) => TensorData::U8(data.to_vec()),
                BufElem::Int(Elem::I8) => TensorData::I8(data.iter().map(|&v| v as i8).collect()),
                BufElem::Int(Elem::I32) => TensorData::I32(int_elems(data, Elem::I32).collect()),
            };
            outs.push(Tensor { shape, data });
        }
        Ok(outs)
    }

    /// Bytes of buffer `id` at `batch` (checked by `prepare`, which allocated them).
    fn bytes(&self, id: usize, batch: usize) -> usize {
        self.plan.bufs[id].bytes(batch).unwrap_or(usize::MAX)
    }

    fn step(
        &self,
        i: usize,
        step: &Step,
        inputs: &[Tensor],
        batch: usize,
        arena: &mut Arena,
    ) -> Result<()> {
        let bufs = &mut arena.bufs;
        match step {
            Step::Quantize {
                input,
                out,
                dtype,
                scale,
                offset,
            } => {
                let x = inputs[*input].as_f32().unwrap_or_default();
                let n = self.bytes(*out, batch);
                boundary::quantize(x, *dtype, *scale, *offset, &mut bufs[*out][..n]);
            }
            Step::Dequantize { x, out, deq } => {
                let BufElem::Int(e) = self.plan.bufs[*x].elem else {
                    return Err(CodegenError::Invalid("dequantize of f32".into()));
                };
                let (nx, no) = (self.bytes(*x, batch), self.bytes(*out, batch));
                let mut o = std::mem::take(&mut bufs[*out]);
                boundary::dequantize(int_elems(&bufs[*x][..nx], e), deq, &mut o[..no]);
                bufs[*out] = o;
            }
            Step::Interp { node, ins, out } => {
                let g = self.plan.graph.as_deref().ok_or_else(|| {
                    CodegenError::Invalid("interpreter step without graph".into())
                })?;
                let mut owned = Vec::new();
                for o in ins {
                    if let interp_step::Operand::Buf(id, dims) = o {
                        let elem = self.plan.bufs[*id].elem;
                        owned.push(interp_step::tensor_of(&bufs[*id], elem, dims, batch));
                    }
                }
                let mut owned = owned.iter();
                let operands: Vec<&Tensor> = ins
                    .iter()
                    .map(|o| match o {
                        interp_step::Operand::Buf(..) => owned.next().expect("one per buffer"),
                        interp_step::Operand::Input(i) => &inputs[*i],
                        interp_step::Operand::Const(t) => t,
                    })
                    .collect();
                let r = fqc_ir::interp::eval_node(g, node, &operands, batch)
                    .map_err(|e| CodegenError::Run(e.to_string()))?;
                let n = self.bytes(*out, batch);
                interp_step::write_tensor(&r, &mut bufs[*out][..n])?;
            }
            Step::Kernel {
                kernel, a, b, out, ..
            } if kernel.is_native() => {
                let n = self.plan.bufs[*out].axis0.resolve(batch as u64) as usize;
                let (na, no) = (self.bytes(*a, batch), self.bytes(*out, batch));
                let nb = b.map_or(0, |b| self.bytes(b, batch));
                let mut o = std::mem::take(&mut bufs[*out]);
                let (xa, xb) = (&bufs[*a][..na], b.map(|b| &bufs[b][..nb]));
                let r = match &**kernel {
                    Kernel::Native(nc) => {
                        let (scratch, work) = (&mut arena.scratch[i], &mut arena.work);
                        let x = (xa, xb.unwrap_or_default());
                        match &mut arena.split {
                            None => native::run(nc, n, x, &mut o[..no], scratch, work),
                            Some(sp) => native::run_split(
                                nc,
                                n,
                                x,
                                &mut o[..no],
                                scratch,
                                work,
                                &mut sp.panels,
                                (&sp.pool, sp.min_macs),
                            ),
                        }
                    }
                    Kernel::NativeRequant(nr) => native::levels::run(nr, n, xa, xb, &mut o[..no]),
                    Kernel::NativePool(np) => native::pool::run(np, n, xa, &mut o[..no]),
                    Kernel::NativeGemv(nv) => {
                        native::gemv::run(nv, n, xa, &mut o[..no], &mut arena.scratch[i])
                    }
                    _ => unreachable!("is_native"),
                };
                bufs[*out] = o;
                r?;
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
                let need = Extent {
                    a: self.bytes(*a, batch),
                    b: b.map_or(0, |b| self.bytes(b, batch)),
                    out: self.bytes(*out, batch),
                    k: consts.len(),
                    scratch: *scratch,
                };
                let mut o = std::mem::take(&mut bufs[*out]);
                let r = exec::call(
                    &self.code,
                    (self.entries[i], n),
                    need,
                    (&bufs[*a], b.map(|b| bufs[b].as_slice())),
                    &mut o,
                    (consts, &mut arena.scratch[i]),
                );
                bufs[*out] = o;
                r?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn compiled_graph_is_send_and_sync() {
        assert_send_sync::<CompiledGraph>();
        assert_send_sync::<Arena>();
    }
}

//! [`Session`]: runs a [`Model`](crate::Model) on one thread's inputs, reusing its
//! activation arena(s) across runs.
//!
//! * **No steady-state allocation of activations.** Each worker owns a
//!   [`fqc_codegen::Arena`], sized by the first run and grown only when a larger batch
//!   comes; the batch slices handed to extra workers and the u8→f32 staging buffer are
//!   also kept and reused. A run allocates only the tensor it returns (and, with several
//!   workers, their partial outputs before they are joined).
//! * **Checked input.** The element type and the shape (`[N, C, H, W]` against the
//!   model's input, `N ≥ 1`, data length = product of the shape) are checked before
//!   anything runs, with one error naming what was expected and what came; so is every
//!   f32 element (NaN and infinities are refused, naming the first).
//! * **Threads.** [`Session::threads`] splits the batch into contiguous slices, one per
//!   scoped worker thread, each running the shared machine code in its own arena; a
//!   batch of one image runs in one arena whose helper
//!   threads share each native convolution's output channels
//!   ([`fqc_codegen::Arena::split_channels`]). Either way each output element is
//!   computed by exactly one thread with the same code, so results do not depend on the
//!   thread count.

use std::sync::Arc;

use fqc_codegen::Arena;
use fqc_ir::{Tensor, TensorData};

use crate::error::{Result, RuntimeError};
use crate::model::Inner;

/// One thread's handle to run a model (see the module docs). Get it from
/// [`Model::session`](crate::Model::session).
#[derive(Debug)]
pub struct Session {
    model: Arc<Inner>,
    threads: usize,
    /// One arena per worker.
    arenas: Vec<Arena>,
    /// With several threads, for batches of one image: an arena whose helper threads
    /// share each convolution's output channels.
    split_arena: Option<Arena>,
    /// Batch slices of the input for workers (reused buffers).
    slices: Vec<Tensor>,
    /// u8 input cast to f32 (reused buffer).
    staged: Tensor,
}

fn type_name(d: &TensorData) -> &'static str {
    match d {
        TensorData::F32(_) => "f32",
        TensorData::I32(_) => "i32",
        TensorData::I64(_) => "i64",
        TensorData::I8(_) => "i8",
        TensorData::U8(_) => "u8",
    }
}

impl Session {
    pub(crate) fn new(model: Arc<Inner>) -> Session {
        Session {
            model,
            threads: 1,
            arenas: vec![Arena::new()],
            split_arena: None,
            slices: Vec::new(),
            staged: Tensor {
                shape: Vec::new(),
                data: TensorData::F32(Vec::new()),
            },
        }
    }

    /// Splits each batch across `n` worker threads (at most one per batch item; a
    /// single image has its convolutions' output channels split between `n` threads
    /// instead; 0 is taken as 1). Returns the session for chaining.
    pub fn threads(mut self, n: usize) -> Session {
        self.set_threads(n);
        self
    }

    /// As [`Session::threads`], in place.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
        self.arenas.resize_with(self.threads, Arena::new);
        self.split_arena = None;
    }

    /// Bytes held by the session's arenas.
    pub fn arena_bytes(&self) -> usize {
        self.arenas
            .iter()
            .chain(&self.split_arena)
            .map(Arena::bytes)
            .sum()
    }

    /// Checks `t`'s type (`want`) and shape; returns the batch size.
    fn check(&self, t: &Tensor, want: &'static str) -> Result<usize> {
        let spec = &self.model.input;
        let got = type_name(&t.data);
        let item_ok = t.shape.len() == spec.item.len() + 1 && t.shape[1..] == spec.item[..];
        let n = t.shape.first().copied().unwrap_or(0);
        let count = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let ok = got == want
            && item_ok
            && n >= 1
            && spec.axis0.is_none_or(|a| a == n)
            && count == Some(t.data.len());
        if !ok {
            return Err(RuntimeError::Input(format!(
                "input `{}` must be {want} {} (NCHW, N >= 1), got {got} {:?} with {} elements",
                spec.name,
                spec.shape_text(),
                t.shape,
                t.data.len()
            )));
        }
        Ok(n)
    }

    /// The model this session runs.
    pub fn model(&self) -> crate::Model {
        crate::Model {
            inner: self.model.clone(),
        }
    }

    /// Runs the model on f32 NCHW `input` (quantized at the model's boundary) and
    /// returns its first output (e.g. `[N, 10]` f32 logits). A NaN or infinite input
    /// element is refused: the input quantizer would clamp it to a level, and the model
    /// would answer as if it were a real pixel value.
    pub fn run(&mut self, input: &Tensor) -> Result<Tensor> {
        let batch = self.check(input, "f32")?;
        if let Some((i, v)) = input.first_non_finite() {
            return Err(RuntimeError::Input(format!(
                "element {:?} of input `{}` is {v}; inputs must be finite numbers",
                input.index_of(i),
                self.model.input.name
            )));
        }
        self.run_checked(input, batch)
    }

    /// Runs the model on raw u8 NCHW `input` (e.g. pixels 0–255, cast to f32 exactly
    /// and quantized at the boundary as [`Session::run`] does).
    pub fn run_u8(&mut self, input: &Tensor) -> Result<Tensor> {
        let batch = self.check(input, "u8")?;
        let TensorData::U8(px) = &input.data else {
            return Err(RuntimeError::Input("input must be u8".into()));
        };
        self.with_staged(
            |v| v.extend(px.iter().map(|&p| f32::from(p))),
            &input.shape,
            |s, staged| s.run_checked(staged, batch),
        )
    }

    /// Runs the model on f32 data of shape `shape` given as a slice (copied into a
    /// reused buffer; used by the C ABI).
    pub fn run_f32_slice(&mut self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        self.with_staged(
            |v| v.extend_from_slice(data),
            shape,
            |s, staged| s.run(staged),
        )
    }

    /// Fills the reused f32 staging tensor (`fill` appends the values to its cleared
    /// buffer; `shape` is its shape) and calls `run` with it, keeping the buffer for the
    /// next call.
    fn with_staged(
        &mut self,
        fill: impl FnOnce(&mut Vec<f32>),
        shape: &[usize],
        run: impl FnOnce(&mut Self, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let mut staged = std::mem::replace(
            &mut self.staged,
            Tensor {
                shape: Vec::new(),
                data: TensorData::I32(Vec::new()),
            },
        );
        if let TensorData::F32(v) = &mut staged.data {
            v.clear();
            fill(v);
        }
        staged.shape.clear();
        staged.shape.extend_from_slice(shape);
        let r = run(self, &staged);
        self.staged = staged;
        r
    }

    fn run_checked(&mut self, input: &Tensor, batch: usize) -> Result<Tensor> {
        let x = std::slice::from_ref(input);
        if batch == 1 && self.threads > 1 {
            // One image: split output channels instead.
            let arena = match &mut self.split_arena {
                Some(a) => a,
                None => {
                    let mut a = Arena::new();
                    a.split_channels(self.threads)?;
                    self.split_arena.insert(a)
                }
            };
            return first_output(self.model.jit.run_in(arena, x)?);
        }
        let workers = self.threads.min(batch);
        if workers <= 1 {
            return first_output(self.model.jit.run_in(&mut self.arenas[0], x)?);
        }
        self.split(input, batch, workers);
        let jit = &self.model.jit;
        let parts: Vec<Result<Tensor>> = std::thread::scope(|s| {
            let handles: Vec<_> = self.arenas[..workers]
                .iter_mut()
                .zip(&self.slices)
                .map(|(arena, x)| {
                    std::thread::Builder::new()
                        .name("fqc-worker".into())
                        .spawn_scoped(s, move || -> Result<Tensor> {
                            first_output(jit.run_in(arena, std::slice::from_ref(x))?)
                        })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(RuntimeError::Model("a worker thread panicked".into()))
                    }),
                    Err(e) => Err(RuntimeError::Model(format!(
                        "cannot start a worker thread: {e}"
                    ))),
                })
                .collect()
        });
        concat(parts.into_iter().collect::<Result<Vec<_>>>()?)
    }

    /// Fills `self.slices[..workers]` with contiguous batch slices of `input`.
    fn split(&mut self, input: &Tensor, batch: usize, workers: usize) {
        let TensorData::F32(x) = &input.data else {
            return;
        };
        let item = x.len() / batch;
        self.slices.resize_with(workers, || Tensor {
            shape: Vec::new(),
            data: TensorData::F32(Vec::new()),
        });
        let mut start = 0;
        for (w, t) in self.slices.iter_mut().enumerate() {
            let n = batch / workers + usize::from(w < batch % workers);
            t.shape.clone_from(&input.shape);
            t.shape[0] = n;
            if let TensorData::F32(v) = &mut t.data {
                v.clear();
                v.extend_from_slice(&x[start * item..(start + n) * item]);
            }
            start += n;
        }
    }
}

fn first_output(outs: Vec<Tensor>) -> Result<Tensor> {
    outs.into_iter()
        .next()
        .ok_or_else(|| RuntimeError::Model("the graph has no output".into()))
}

/// Joins per-worker outputs along axis 0.
fn concat(parts: Vec<Tensor>) -> Result<Tensor> {
    let mut it = parts.into_iter();
    let Some(mut acc) = it.next() else {
        return Err(RuntimeError::Model("no output".into()));
    };
    for p in it {
        let mismatch = || RuntimeError::Model("worker outputs differ in type or shape".into());
        if p.shape.get(1..) != acc.shape.get(1..) || acc.shape.is_empty() {
            return Err(mismatch());
        }
        acc.shape[0] += p.shape[0];
        match (&mut acc.data, p.data) {
            (TensorData::F32(a), TensorData::F32(b)) => a.extend(b),
            (TensorData::I32(a), TensorData::I32(b)) => a.extend(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend(b),
            (TensorData::I8(a), TensorData::I8(b)) => a.extend(b),
            (TensorData::U8(a), TensorData::U8(b)) => a.extend(b),
            _ => return Err(mismatch()),
        }
    }
    Ok(acc)
}

//! [`Model`]: a verified `.fqc` graph, JIT-compiled once, shared by any number of
//! [`Session`]s and threads.
//!
//! A model is an `Arc` around immutable state (the graph, its machine code, the input
//! signature), so cloning it is cheap and it is `Send + Sync` without any `unsafe` here:
//! `fqc_codegen::CompiledGraph` is `Send + Sync` (its code is read-only after
//! finalisation; see `codegen/src/exec.rs`), and every mutable run buffer lives in a
//! [`Session`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fqc_codegen::CompiledGraph;
use fqc_ir::{Dim, Graph, Op};

use crate::error::{Result, RuntimeError};
use crate::session::Session;

/// The one graph input a session feeds.
#[derive(Debug, Clone)]
pub(crate) struct InputSpec {
    pub name: String,
    /// Axis 0: `None` for the batch, `Some(n)` if the graph fixes it.
    pub axis0: Option<usize>,
    /// Extents after axis 0.
    pub item: Vec<usize>,
}

impl InputSpec {
    /// `[N,1,28,28]`-style text of the expected shape.
    pub fn shape_text(&self) -> String {
        let mut s = self.axis0.map_or("N".to_string(), |n| n.to_string());
        for d in &self.item {
            s.push_str(&format!(",{d}"));
        }
        format!("[{s}]")
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub graph: Graph,
    pub jit: CompiledGraph,
    pub input: InputSpec,
    pub compile_time: Duration,
}

/// A loaded, JIT-compiled model (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) inner: Arc<Inner>,
}

impl Model {
    /// Loads and verifies the `.fqc` artifact at `path` and JIT-compiles it.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::from_graph(crate::artifact::load_file(path)?)
    }

    /// Loads a `.fqc` artifact from memory and JIT-compiles it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::from_graph(crate::artifact::load(bytes)?)
    }

    /// JIT-compiles an integer-only graph (after `integerize`) with one input.
    pub fn from_graph(graph: Graph) -> Result<Model> {
        let started = Instant::now();
        let jit = fqc_codegen::compile(&graph)?;
        let compile_time = started.elapsed();
        let [(name, dims)] = jit.inputs() else {
            return Err(RuntimeError::Model(format!(
                "a session feeds exactly one input; this graph has {}",
                jit.inputs().len()
            )));
        };
        if graph.outputs().is_empty() {
            return Err(RuntimeError::Model("the graph has no output".into()));
        }
        let fixed = |d: &Dim| match d {
            Dim::Fixed(n) => usize::try_from(*n).ok(),
            Dim::Batch => None,
        };
        let item: Option<Vec<usize>> = dims.iter().skip(1).map(fixed).collect();
        let (Some(d0), Some(item)) = (dims.first(), item) else {
            return Err(RuntimeError::Model(format!(
                "input `{name}` needs a batch axis 0 and fixed other axes"
            )));
        };
        let input = InputSpec {
            name: name.clone(),
            axis0: fixed(d0),
            item,
        };
        Ok(Model {
            inner: Arc::new(Inner {
                graph,
                jit,
                input,
                compile_time,
            }),
        })
    }

    /// A new session (own activation arena; one per thread).
    pub fn session(&self) -> Session {
        Session::new(self.inner.clone())
    }

    /// The integer-only graph the model runs.
    pub fn graph(&self) -> &Graph {
        &self.inner.graph
    }

    /// Wall time the JIT compile took.
    pub fn compile_time(&self) -> Duration {
        self.inner.compile_time
    }

    /// The code each compiled step runs, as `(node name, form)` (e.g.
    /// `native-a512+requantize`): which kernels this CPU got.
    pub fn kernel_forms(&self) -> &[(String, &'static str)] {
        self.inner.jit.kernel_forms()
    }

    /// The input's shape after axis 0 (e.g. `[1, 28, 28]`).
    pub fn input_item_shape(&self) -> &[usize] {
        &self.inner.input.item
    }

    /// Elements per batch item of the first output (e.g. 10 logits).
    pub fn output_item_len(&self) -> usize {
        let g = &self.inner.graph;
        g.outputs()
            .first()
            .and_then(|&v| g.ty(v).shape.numel_per_item())
            .map_or(0, |n| n as usize)
    }

    /// Multiply-accumulates of one image: `qconv` and `qgemm` nodes, each output
    /// element costing one MAC per weight of its output channel.
    pub fn macs_per_image(&self) -> u64 {
        let g = &self.inner.graph;
        g.nodes()
            .filter_map(|(_, d)| {
                let is_conv = match d.op {
                    Op::QConv { .. } => true,
                    Op::QGemm { .. } => false,
                    _ => return None,
                };
                let w = g.const_tensor(*d.inputs.get(1)?)?;
                let out = g.ty(d.output);
                let channels = if is_conv {
                    *w.shape.first()?
                } else {
                    out.shape.0.last()?.fixed()? as usize
                };
                let per_channel = (w.numel() / channels.max(1)) as u64;
                Some(out.shape.numel_per_item()?.saturating_mul(per_channel))
            })
            .sum()
    }
}

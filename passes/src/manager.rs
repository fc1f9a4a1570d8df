//! The pass manager: runs an ordered pipeline of named passes over a graph, verifying
//! the graph after every pass (always: a pass that breaks an invariant is caught at the
//! pass that broke it, naming it), timing each pass, and printing the IR after chosen
//! passes. `stop_after` ends the pipeline early so any intermediate form can be inspected
//! or snapshot.

use std::time::{Duration, Instant};

use fqc_ir::Graph;

use crate::context::PassContext;
use crate::{PassError, Result};

/// A rewrite over the graph. Implementations live one per file in this crate.
pub trait Pass {
    /// The pass's name on the command line (`fold-batchnorm`, …).
    fn name(&self) -> &'static str;
    /// Rewrites `g` in place.
    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()>;
}

/// What to print or where to stop.
#[derive(Debug, Default, Clone)]
pub struct PipelineOptions {
    /// Print the IR after these passes.
    pub print_after: Vec<String>,
    /// Print the IR after every pass.
    pub print_all: bool,
    /// Stop after this pass.
    pub stop_after: Option<String>,
}

/// One pass's run: its name, wall time, and the IR text if it was asked for.
#[derive(Debug, Clone)]
pub struct PassRecord {
    pub name: &'static str,
    pub time: Duration,
    pub printed: Option<String>,
}

/// An ordered list of passes.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl std::fmt::Debug for PassManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.passes.iter().map(|p| p.name()))
            .finish()
    }
}

impl PassManager {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> PassManager {
        PassManager { passes }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs the pipeline. Unknown names in `opts` are an error before anything runs.
    pub fn run(
        &self,
        g: &mut Graph,
        cx: &mut PassContext,
        opts: &PipelineOptions,
    ) -> Result<Vec<PassRecord>> {
        let names = self.names();
        for n in opts.print_after.iter().chain(opts.stop_after.iter()) {
            if !names.contains(&n.as_str()) {
                return Err(PassError::Usage(format!(
                    "unknown pass `{n}` (passes: {})",
                    names.join(", ")
                )));
            }
        }
        let mut records = Vec::new();
        for pass in &self.passes {
            let start = Instant::now();
            pass.run(g, cx)?;
            let time = start.elapsed();
            fqc_ir::verify(g).map_err(|e| PassError::Broken {
                pass: pass.name(),
                msg: e.to_string(),
            })?;
            let printed = (opts.print_all || opts.print_after.iter().any(|p| p == pass.name()))
                .then(|| fqc_ir::text::print(g));
            records.push(PassRecord {
                name: pass.name(),
                time,
                printed,
            });
            if opts.stop_after.as_deref() == Some(pass.name()) {
                break;
            }
        }
        Ok(records)
    }
}

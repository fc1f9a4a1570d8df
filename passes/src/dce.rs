//! `dce`: drops every node and constant the graph outputs do not need, with
//! `Graph::compact`, which also renumbers values densely in the printer's order.
//!
//! Sound because only values the outputs transitively use can affect them; the graph
//! inputs (the signature) are kept. It runs last: renumbering invalidates every side
//! table keyed by value, so `cx.ranges` is cleared (latent weights are keyed by node
//! name and survive).

use fqc_ir::Graph;

use crate::context::PassContext;
use crate::{Pass, Result};

/// Dead-code elimination by compaction (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        *g = g.compact();
        cx.ranges.clear();
        Ok(())
    }
}

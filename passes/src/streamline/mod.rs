//! Equality-saturation streamlining of residual joins and pooling (egg).
//!
//! A quantizer whose operand is a join or a pool of dequantized tensors, e.g.
//! `quantize_{s_y}(add(dq_{0.031}(a), dq_{0.047}(b)))` or
//! `quantize_{s_y}(avgpool(dq_{s_x}(x)))`, is written as a [`Term`] over the [`lang`]
//! language and saturated with the exact rules of [`rules`]; the cheapest term under
//! [`lang::IntegerCost`] (float ops ~1000, integer ops 1) is extracted and lowered to a
//! [`Plan`]: an integer term (`scaled_add`, `sumpool`, `global_sumpool`) whose real
//! value is `a · acc`, quantized by thresholds. Soundness: every rule but one is an
//! identity of exact rational arithmetic (conditions check the signs a rule relies on),
//! so the plan computes exactly the real value the fake-quant operand denotes. The
//! exception is the fallback of `rescale-to-common-scale` when the exact common scale's
//! factors overflow i32 (8-bit branches): it rounds the branch factors at a scale
//! `2^-K` below the larger branch scale, relative error ≤ 1/(2k) ≤ 2^-20 (see
//! `rules::nearby_common_scale`); the property test measures 0 level mismatches.
//!
//! What the e-graph finds that greedy local rewrites do not: a local rewrite at the join
//! sees `add` of two reals at scales 0.031 and 0.047 and either gives up or keeps a float
//! multiply rescaling one branch by 0.047/0.031. Saturation instead turns both `dq`s into
//! scaled integers, factors the *exact* common scale out of the `add` (for the f32 values
//! `0.031 = 8321499·2^-28` and `0.047 = 12616466·2^-28`, `s = 2^-28` and the join becomes
//! `scaled_add(a, b, 8321499, 12616466)`), and only then — once the outer factor is a
//! lone positive scale — absorbs it into the *next* quantizer's thresholds, which is a
//! rewrite at a different node than the one that created the factor. Likewise for pools
//! the divisor `1/n` and the input scale are pulled out of the sum pool and merged into
//! one factor `s_x/n` before being absorbed (`(qi s_x/n s_y (sumpool x))`), so no float
//! remains; a ReLU between them is dropped by an unsigned quantizer after the scale has
//! been moved past it. Runner limits (iterations, nodes, time) are always set, and the
//! stop reason is logged into the pass notes.

pub mod lang;
pub mod rules;

use std::time::Duration;

use egg::{Extractor, Id, RecExpr, Runner, Symbol};

use crate::thresholds::Rat;
use lang::{symbol_index, Arith, ArithAnalysis, IntegerCost, FLOAT_COST};

/// A quantizer operand in real arithmetic over dequantized integer leaves.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// `dq(x<i>)` at its leaf scale.
    Leaf(usize),
    Add(Box<Term>, Box<Term>),
    /// Average pool over window `pool` with a constant divisor.
    AvgPool {
        pool: usize,
        divisor: u64,
        x: Box<Term>,
    },
    /// Global average pool over `divisor` elements.
    Gap {
        divisor: u64,
        x: Box<Term>,
    },
    Relu(Box<Term>),
}

/// A low-bit integer leaf: its scale and `max |x|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leaf {
    pub scale: Rat,
    pub bound: i128,
}

/// An integer-only computation of a quantizer's operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntTerm {
    /// A leaf used as an accumulator (widened to i32).
    Leaf(usize),
    /// `k1·x<i> + k2·x<j>`.
    ScaledAdd(usize, i32, usize, i32),
    /// Window sums of a leaf over window `p<i>`.
    SumPool(usize, usize),
    /// Global sums of a leaf.
    GlobalSum(usize),
}

/// The extracted form: quantize `a · root` (after a ReLU if `relu`) by thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub root: IntTerm,
    pub a: Rat,
    pub relu: bool,
    /// The extracted term, for reports.
    pub term: String,
}

/// Saturates `(q s_y qmin term)` and lowers the cheapest integer-only form; notes get the
/// runner's stop reason and the extracted term. Errors (as text) when a float op remains.
pub fn streamline_quantize(
    term: &Term,
    leaves: &[Leaf],
    pool_sizes: &[u64],
    gsum_size: u64,
    s_y: Rat,
    qmin: i64,
    notes: &mut Vec<String>,
) -> Result<Plan, String> {
    let mut expr = RecExpr::default();
    let body = add_term(&mut expr, term, leaves);
    let sy = expr.add(Arith::Num(s_y));
    let qm = expr.add(Arith::Num(Rat::int(qmin)));
    expr.add(Arith::Q([sy, qm, body]));
    let analysis = ArithAnalysis {
        leaf_bounds: leaves.iter().map(|l| l.bound).collect(),
        pool_sizes: pool_sizes.iter().map(|&n| i128::from(n)).collect(),
        gsum_size: i128::from(gsum_size),
    };
    let runner = Runner::<Arith, ArithAnalysis>::new(analysis)
        .with_iter_limit(30)
        .with_node_limit(20_000)
        .with_time_limit(Duration::from_secs(2))
        .with_expr(&expr)
        .run(&rules::rules());
    let root = runner.roots[0];
    let (cost, best) = Extractor::new(
        &runner.egraph,
        IntegerCost {
            egraph: &runner.egraph,
        },
    )
    .find_best(root);
    notes.push(format!(
        "streamline: {expr} => {best} (cost {cost}, {} iterations, {} e-nodes, stop: {:?})",
        runner.iterations.len(),
        runner.egraph.total_number_of_nodes(),
        runner.stop_reason
    ));
    if cost >= FLOAT_COST {
        return Err(format!("a float op remains after streamlining: {best}"));
    }
    lower(&best)
}

fn add_term(expr: &mut RecExpr<Arith>, t: &Term, leaves: &[Leaf]) -> Id {
    match t {
        Term::Leaf(i) => {
            let s = expr.add(Arith::Num(leaves[*i].scale));
            let x = expr.add(Arith::Sym(Symbol::from(format!("x{i}"))));
            expr.add(Arith::Dq([s, x]))
        }
        Term::Add(a, b) => {
            let a = add_term(expr, a, leaves);
            let b = add_term(expr, b, leaves);
            expr.add(Arith::Add([a, b]))
        }
        Term::AvgPool { pool, divisor, x } => {
            let x = add_term(expr, x, leaves);
            let p = expr.add(Arith::Sym(Symbol::from(format!("p{pool}"))));
            let n = expr.add(Arith::Num(Rat::int(*divisor as i64)));
            expr.add(Arith::AvgPool([p, n, x]))
        }
        Term::Gap { divisor, x } => {
            let x = add_term(expr, x, leaves);
            let n = expr.add(Arith::Num(Rat::int(*divisor as i64)));
            expr.add(Arith::Gap([n, x]))
        }
        Term::Relu(x) => {
            let x = add_term(expr, x, leaves);
            expr.add(Arith::Relu(x))
        }
    }
}

/// Lowers an extracted `(qi s s_y qmin X)` to a [`Plan`].
fn lower(e: &RecExpr<Arith>) -> Result<Plan, String> {
    let nodes = e.as_ref();
    let node = |id: Id| &nodes[usize::from(id)];
    let num = |id: Id| match node(id) {
        Arith::Num(r) => Ok(*r),
        other => Err(format!("expected a constant, found `{other}`")),
    };
    let leaf = |id: Id| match node(id) {
        Arith::Sym(s) => symbol_index(*s, 'x').ok_or_else(|| format!("bad leaf `{s}`")),
        other => Err(format!("expected an integer tensor, found `{other}`")),
    };
    // A join operand: `x<i>` or `(mul k x<i>)`.
    let scaled = |id: Id| -> Result<(usize, i32), String> {
        match node(id) {
            Arith::Mul([k, x]) => {
                let k = num(*k)?;
                let k = i32::try_from(k.num()).ok().filter(|_| k.is_integer());
                Ok((leaf(*x)?, k.ok_or("non-integer factor")?))
            }
            _ => Ok((leaf(id)?, 1)),
        }
    };
    let root = Id::from(nodes.len() - 1);
    let Arith::Qi([s, _, _, x]) = node(root) else {
        return Err(format!("no threshold quantizer at the root of {e}"));
    };
    let a = num(*s)?;
    let (x, relu) = match node(*x) {
        Arith::Relu(inner) => (*inner, true),
        _ => (*x, false),
    };
    let root = match node(x) {
        Arith::Sym(_) => IntTerm::Leaf(leaf(x)?),
        Arith::Add([p, q]) => {
            let ((i, ki), (j, kj)) = (scaled(*p)?, scaled(*q)?);
            IntTerm::ScaledAdd(i, ki, j, kj)
        }
        Arith::Mul(_) => {
            let (i, k) = scaled(x)?;
            IntTerm::ScaledAdd(i, k, i, 0)
        }
        Arith::SumPool([p, y]) => match node(*p) {
            Arith::Sym(s) => IntTerm::SumPool(
                symbol_index(*s, 'p').ok_or_else(|| format!("bad window `{s}`"))?,
                leaf(*y)?,
            ),
            other => return Err(format!("bad window `{other}`")),
        },
        Arith::GSum(y) => IntTerm::GlobalSum(leaf(*y)?),
        other => return Err(format!("`{other}` has no integer op over low-bit operands")),
    };
    Ok(Plan {
        root,
        a,
        relu,
        term: e.to_string(),
    })
}

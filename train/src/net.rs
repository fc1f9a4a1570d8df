//! The network a stage trains: the IR float master interpreted op by op on burn tensors,
//! with the stage's quantizers made learnable.
//!
//! The fake-quant graph a stage builds (`quantize-weights` → `quantize-activations` →
//! `fuse-activation`) is the float master with (a) every Conv/Gemm weight replaced by
//! `dequantize(quantize_per_channel(latent))` and (b) a `quantize` → `dequantize` pair
//! on every activation point (`StageHandle::activations`), each relu/clip read by such a
//! quantizer absorbed into its clamp, which changes nothing it computes. So [`Net`]
//! interprets the *master* and applies, after every activation point, the activation
//! quantizer (unsigned `[0, 2^b−1]` when the range starts at 0, else signed symmetric,
//! step `amax / qmax`) and, in place of every layer's weight, the per-channel weight
//! quantizer (step `α_c`, levels `[−n, n]`, `n = 1` for ternary, `2^(b−1)−1` else): the
//! same values the fake-quant graph, and so the integer graph, computes. The learnable
//! parameters are the latent weights, `log α_c`, the per-channel biases and
//! `log amax` of every activation quantizer, plus, in stages that train them, the
//! BatchNorms of [`crate::batchnorm`] behind the layers they were folded into.
//!
//! Values are kept as 4-D burn tensors with their logical shape (rank ≤ 4, padded with
//! trailing 1s), so one map holds every rank; broadcasting aligns logical shapes on the
//! right, as the IR (NumPy) does. Ops outside the supported set are an error naming the
//! node.

use std::collections::HashMap;

use burn::tensor::activation::softmax;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use fqc_ir::{BinaryOp, Graph, Node, Op, Value, Window};
use fqc_passes::schedule::{LayerKind, StageHandle};
use fqc_passes::WeightBits;

use crate::batchnorm::{self, Bn, Mode};
use crate::quant::{act_levels, fake_quant, grad_scale};
use crate::{Result, TrainError};

/// What a parameter is (optimizer groups differ in learning rate and weight decay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Weight,
    Scale,
    Bias,
    /// BatchNorm running statistics: not optimized, updated from batch statistics.
    Stat,
}

/// A trainable Conv/Gemm layer.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub node: Node,
    pub kind: LayerKind,
    /// Latent weight shape (the master's layout).
    pub shape: Vec<usize>,
    pub channel_axis: usize,
    /// Positive integer levels `n` (1 for ternary).
    pub levels: f64,
    /// Parameter indices: weight, `log α`, bias (if the bias is per channel).
    pub w: usize,
    pub s: usize,
    pub b: Option<usize>,
    /// Whether a BatchNorm was folded into this layer (and it has a per-channel bias),
    /// so that [`Net::train_batchnorm`] may give it one again.
    pub batchnorm: bool,
    /// The BatchNorm this stage trains in front of the layer's bias, if any.
    pub bn: Option<Bn>,
}

/// A learnable activation quantizer.
#[derive(Clone, Debug)]
pub struct Act {
    pub value: Value,
    pub signed: bool,
    pub qmin: f64,
    pub qmax: f64,
    /// Elements per image (LSQ's gradient scale).
    pub numel: usize,
    /// Parameter index of `log amax`.
    pub s: usize,
}

/// Parameters as host vectors, with their groups (what training starts from and
/// writes back).
#[derive(Clone, Debug, Default)]
pub struct HostParams {
    pub values: Vec<Vec<f32>>,
    pub groups: Vec<Group>,
}

impl HostParams {
    pub(crate) fn push(&mut self, v: Vec<f32>, g: Group) -> usize {
        self.values.push(v);
        self.groups.push(g);
        self.values.len() - 1
    }
}

/// A value: a 4-D tensor and its logical shape.
#[derive(Clone, Debug)]
struct Val {
    t: Tensor<4>,
    shape: Vec<usize>,
}

fn pad4(shape: &[usize]) -> [usize; 4] {
    let mut s = [1; 4];
    s[..shape.len()].copy_from_slice(shape);
    s
}

impl Val {
    fn reshaped(&self, shape: Vec<usize>) -> Val {
        Val {
            t: self.t.clone().reshape(pad4(&shape)),
            shape,
        }
    }

    /// Left-pads the logical shape to `rank` (NumPy broadcasting).
    fn to_rank(&self, rank: usize) -> Val {
        let mut shape = vec![1; rank - self.shape.len()];
        shape.extend(&self.shape);
        self.reshaped(shape)
    }

    fn two_d(&self) -> Tensor<2> {
        let (m, k) = match self.shape.as_slice() {
            [m, k] => (*m, *k),
            [k] => (1, *k),
            s => (s[0], s[1..].iter().product()),
        };
        self.t.clone().reshape([m, k])
    }
}

/// The interpreted network (see the module docs).
#[derive(Debug)]
pub struct Net {
    graph: Graph,
    consts: HashMap<Value, Val>,
    pub layers: Vec<Layer>,
    layer_of: HashMap<Node, usize>,
    pub acts: Vec<Act>,
    act_of: HashMap<Value, usize>,
    /// Nodes (softmax) skipped because they only turn the output logits into
    /// probabilities: training and accuracy use the logits.
    skip: Vec<Node>,
    device: Device,
}

fn unsupported(g: &Graph, n: Node, why: &str) -> TrainError {
    let d = g.node(n);
    TrainError::Unsupported(format!(
        "node `{}` ({}): {why}",
        if d.name.is_empty() {
            format!("#{}", n.0)
        } else {
            d.name.clone()
        },
        d.op.name()
    ))
}

impl Net {
    /// The float network `g` with no quantizers (e.g. the distillation teacher).
    pub fn float(g: &Graph, device: &Device) -> Result<Net> {
        Net::build(g, device)
    }

    /// The stage's network with learnable quantizers, and its initial parameters from
    /// the handle (latent weights, current weight scales, biases, activation ranges).
    pub fn stage(handle: &StageHandle<'_>, device: &Device) -> Result<(Net, HostParams)> {
        let g = handle.float_graph();
        let mut net = Net::build(g, device)?;
        let mut p = HostParams::default();
        let by_name: HashMap<&str, Node> = g
            .nodes()
            .filter(|(_, d)| matches!(d.op, Op::Conv { .. } | Op::Gemm { .. }))
            .map(|(n, d)| (d.name.as_str(), n))
            .collect();
        for l in handle.layers() {
            let Some(&node) = by_name.get(l.name.as_str()) else {
                continue;
            };
            let latent = handle
                .latent(&l.name)
                .and_then(|t| t.as_f32())
                .ok_or_else(|| {
                    TrainError::Unsupported(format!("layer `{}` has no f32 latent weights", l.name))
                })?;
            let scales = handle.weight_scales(&l.name).ok_or_else(|| {
                TrainError::Unsupported(format!("layer `{}` has no weight scales", l.name))
            })?;
            let levels = match l.weights {
                WeightBits::Ternary => 1.0,
                WeightBits::Bits(b) => f64::from((1u32 << (b - 1)) - 1),
            };
            let w = p.push(latent.to_vec(), Group::Weight);
            let s = p.push(
                scales.iter().map(|a| a.max(1e-12).ln()).collect(),
                Group::Scale,
            );
            let b = handle.bias(&l.name).map(|b| p.push(b, Group::Bias));
            net.layer_of.insert(node, net.layers.len());
            net.layers.push(Layer {
                name: l.name.clone(),
                node,
                kind: l.kind,
                shape: l.weight_shape.clone(),
                channel_axis: l.channel_axis,
                levels,
                w,
                s,
                b,
                batchnorm: l.batchnorm && b.is_some(),
                bn: None,
            });
        }
        for a in handle.activations() {
            let Some(r) = handle.range(a.value) else {
                continue;
            };
            let signed = r.lo < 0.0;
            let amax = if signed { r.lo.abs().max(r.hi) } else { r.hi };
            let (qmin, qmax) = act_levels(a.bits, signed);
            let numel = g.ty(a.value).shape.numel_per_item().unwrap_or(1).max(1) as usize;
            let s = p.push(vec![amax.max(1e-12).ln()], Group::Scale);
            net.act_of.insert(a.value, net.acts.len());
            net.acts.push(Act {
                value: a.value,
                signed,
                qmin,
                qmax,
                numel,
                s,
            });
        }
        Ok((net, p))
    }

    fn build(g: &Graph, device: &Device) -> Result<Net> {
        if g.inputs().len() != 1 || g.outputs().len() != 1 {
            return Err(TrainError::Unsupported(format!(
                "training needs a graph with one input and one output (it has {} and {})",
                g.inputs().len(),
                g.outputs().len()
            )));
        }
        let mut consts = HashMap::new();
        for (v, _) in g.values() {
            if let Some(t) = g.const_tensor(v) {
                if let Some(data) = t.as_f32() {
                    if t.shape.len() <= 4 {
                        let shape = t.shape.clone();
                        let bt = Tensor::<4>::from_data(
                            TensorData::new(data.to_vec(), pad4(&shape)),
                            device,
                        );
                        consts.insert(v, Val { t: bt, shape });
                    }
                }
            }
        }
        // A trailing softmax (possibly behind layout ops) is left out.
        let mut skip = Vec::new();
        let out = g.outputs()[0];
        if let Some((n, d)) = g.nodes().find(|(_, d)| d.output == out) {
            if matches!(d.op, Op::Softmax { .. }) {
                skip.push(n);
            }
        }
        Ok(Net {
            graph: g.clone(),
            consts,
            layers: Vec::new(),
            layer_of: HashMap::new(),
            acts: Vec::new(),
            act_of: HashMap::new(),
            skip,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters as tensors on `device` (no autodiff).
    pub fn tensors(&self, p: &HostParams) -> Vec<Tensor<1>> {
        p.values
            .iter()
            .map(|v| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &self.device))
            .collect()
    }

    /// The logits `[N, classes]` for the batch `x` (raw NCHW input): with `params`
    /// the fake-quant network, without the float network. BatchNorms use their running
    /// statistics.
    pub fn forward(&self, params: Option<&[Tensor<1>]>, x: Tensor<4>) -> Result<Tensor<2>> {
        self.forward_mode(params, x, &mut Mode::Eval)
    }

    /// [`Net::forward`] with the BatchNorms in `mode` (see [`batchnorm`]).
    pub fn forward_mode(
        &self,
        params: Option<&[Tensor<1>]>,
        x: Tensor<4>,
        mode: &mut Mode,
    ) -> Result<Tensor<2>> {
        let g = &self.graph;
        let input = g.inputs()[0];
        let batch = x.dims()[0];
        let mut vals: HashMap<Value, Val> = HashMap::new();
        let rank = g.ty(input).shape.0.len();
        let xin = Val {
            shape: x.dims()[..rank.min(4)].to_vec(),
            t: x,
        };
        vals.insert(input, self.act(params, input, xin));
        for &n in g.order() {
            let d = g.node(n);
            let get = |i: usize| -> Result<Val> {
                let v = *d
                    .inputs
                    .get(i)
                    .ok_or_else(|| unsupported(g, n, "missing operand"))?;
                vals.get(&v)
                    .or_else(|| self.consts.get(&v))
                    .cloned()
                    .ok_or_else(|| unsupported(g, n, "operand is not an f32 value or constant"))
            };
            if self.skip.contains(&n) {
                let y = get(0)?;
                vals.insert(d.output, y);
                continue;
            }
            let shape = g.ty(d.output).shape.resolve(batch as u64);
            if shape.len() > 4 {
                return Err(unsupported(g, n, "results of rank > 4 are not supported"));
            }
            let y = match &d.op {
                Op::Conv { window, group } => {
                    let x = get(0)?;
                    let (w, b) = self.layer_operands(params, n, &get, 4)?;
                    let w: Tensor<4> = w.t;
                    let opts = ConvOptions::new_with_padding(
                        [window.strides[0] as usize, window.strides[1] as usize],
                        pads(window),
                        [window.dilations[0] as usize, window.dilations[1] as usize],
                        *group as usize,
                    );
                    let b = b.map(|b| b.t.reshape([shape[1]]));
                    let t = conv2d(x.t, w, b, opts);
                    Val {
                        t,
                        shape: shape.clone(),
                    }
                }
                Op::Gemm {
                    alpha,
                    beta,
                    trans_a,
                    trans_b,
                } => {
                    let a = get(0)?.two_d();
                    let a = if *trans_a { a.transpose() } else { a };
                    let (w, b) = self.layer_operands(params, n, &get, 2)?;
                    let w = w.two_d();
                    let w = if *trans_b { w.transpose() } else { w };
                    let mut y = a.matmul(w);
                    if alpha.get() != 1.0 {
                        y = y.mul_scalar(alpha.get());
                    }
                    let yv = Val {
                        t: y.reshape(pad4(&shape)),
                        shape: shape.clone(),
                    };
                    match b {
                        Some(b)
                            if params.is_some()
                                && self
                                    .layer_of
                                    .get(&n)
                                    .is_some_and(|&i| self.layers[i].b.is_some()) =>
                        {
                            binary(BinaryOp::Add, &yv, &b)
                        }
                        Some(c) if beta.get() != 0.0 => {
                            let c = Val {
                                t: c.t.mul_scalar(beta.get()),
                                shape: c.shape,
                            };
                            binary(BinaryOp::Add, &yv, &c)
                        }
                        _ => yv,
                    }
                }
                Op::Relu => {
                    let x = get(0)?;
                    Val {
                        t: x.t.clamp_min(0.0),
                        shape: x.shape,
                    }
                }
                Op::Clip { min, max } => {
                    let x = get(0)?;
                    let mut t = x.t;
                    if min.get() > f32::NEG_INFINITY {
                        t = t.clamp_min(min.get());
                    }
                    if max.get() < f32::INFINITY {
                        t = t.clamp_max(max.get());
                    }
                    Val { t, shape: x.shape }
                }
                Op::Binary(b) => binary(*b, &get(0)?, &get(1)?),
                Op::Sum => {
                    let mut acc = get(0)?;
                    for i in 1..d.inputs.len() {
                        acc = binary(BinaryOp::Add, &acc, &get(i)?);
                    }
                    acc
                }
                Op::MaxPool { window } => {
                    let x = get(0)?;
                    let opts = MaxPoolOptions::new(kernel(window))
                        .with_stride(strides(window))
                        .with_padding_pairs(pads(window))
                        .with_dilation([window.dilations[0] as usize, window.dilations[1] as usize])
                        .with_ceil_mode(window.ceil_mode);
                    Val {
                        t: max_pool2d(x.t, opts),
                        shape: shape.clone(),
                    }
                }
                Op::AveragePool {
                    window,
                    count_include_pad,
                } => {
                    if window.dilations != [1, 1] {
                        return Err(unsupported(g, n, "dilated average pooling"));
                    }
                    let x = get(0)?;
                    let opts = AvgPoolOptions::new(kernel(window))
                        .with_stride(strides(window))
                        .with_padding_pairs(pads(window))
                        .with_count_include_pad(*count_include_pad)
                        .with_ceil_mode(window.ceil_mode);
                    Val {
                        t: avg_pool2d(x.t, opts),
                        shape: shape.clone(),
                    }
                }
                Op::GlobalAveragePool => {
                    let x = get(0)?;
                    Val {
                        t: x.t.mean_dim(3).mean_dim(2),
                        shape: shape.clone(),
                    }
                }
                Op::GlobalMaxPool => {
                    let x = get(0)?;
                    Val {
                        t: x.t.max_dim(3).max_dim(2),
                        shape: shape.clone(),
                    }
                }
                Op::Flatten { .. } | Op::Reshape { .. } => get(0)?.reshaped(shape.clone()),
                Op::Softmax { axis } => {
                    let x = get(0)?;
                    Val {
                        t: softmax(x.t, *axis as usize),
                        shape: x.shape,
                    }
                }
                Op::Concat { axis } => {
                    let parts = (0..d.inputs.len())
                        .map(|i| get(i).map(|v| v.t))
                        .collect::<Result<Vec<_>>>()?;
                    Val {
                        t: Tensor::cat(parts, *axis as usize),
                        shape: shape.clone(),
                    }
                }
                _ => return Err(unsupported(g, n, "op not supported by the trainer")),
            };
            let y = self.batchnorm(params, n, y, mode);
            let y = self.act(params, d.output, y);
            vals.insert(d.output, y);
        }
        let out = g.outputs()[0];
        let y = vals
            .remove(&out)
            .ok_or_else(|| TrainError::Unsupported("the graph output is not computed".into()))?;
        Ok(y.two_d())
    }

    /// Applies the BatchNorm of layer node `n`, if it has one and `params` are given.
    fn batchnorm(&self, params: Option<&[Tensor<1>]>, n: Node, y: Val, mode: &mut Mode) -> Val {
        let (Some(p), Some(&li)) = (params, self.layer_of.get(&n)) else {
            return y;
        };
        let l = &self.layers[li];
        let (Some(bn), Some(b)) = (&l.bn, l.b) else {
            return y;
        };
        let t = batchnorm::apply(y.t, (li, bn), p[b].clone(), p, mode);
        Val { t, shape: y.shape }
    }

    /// Applies the activation quantizer of `v`, if it is a point and `params` are given.
    fn act(&self, params: Option<&[Tensor<1>]>, v: Value, x: Val) -> Val {
        let (Some(p), Some(&i)) = (params, self.act_of.get(&v)) else {
            return x;
        };
        let a = &self.acts[i];
        let g = 1.0 / ((a.numel as f64) * a.qmax).sqrt();
        let scale = grad_scale(p[a.s].clone(), g).exp().div_scalar(a.qmax);
        let scale: Tensor<4> = scale.reshape([1, 1, 1, 1]);
        Val {
            t: fake_quant(x.t, scale, a.qmin, a.qmax),
            shape: x.shape,
        }
    }

    /// The weight (quantized, from the parameters, when the node is a trainable layer)
    /// and the bias operand of Conv/Gemm node `n`.
    fn layer_operands(
        &self,
        params: Option<&[Tensor<1>]>,
        n: Node,
        get: &dyn Fn(usize) -> Result<Val>,
        rank: usize,
    ) -> Result<(Val, Option<Val>)> {
        let d = self.graph.node(n);
        let (Some(p), Some(&li)) = (params, self.layer_of.get(&n)) else {
            let b = if d.inputs.len() > 2 {
                Some(get(2)?)
            } else {
                None
            };
            return Ok((get(1)?, b));
        };
        let l = &self.layers[li];
        let m = l.shape[l.channel_axis];
        let per = l.shape.iter().product::<usize>() / m.max(1);
        let g = 1.0 / ((per as f64) * l.levels).sqrt();
        let alpha = grad_scale(p[l.s].clone(), g).exp();
        let mut bshape = vec![1; rank];
        bshape[l.channel_axis] = m;
        let alpha: Tensor<4> = alpha.reshape(pad4(&bshape));
        let w: Tensor<4> = p[l.w].clone().reshape(pad4(&l.shape));
        let wq = fake_quant(w, alpha, -l.levels, l.levels);
        let b = match l.b {
            // The BatchNorm adds `β` (`Net::batchnorm`).
            Some(_) if l.bn.is_some() => None,
            Some(bi) => Some(Val {
                t: p[bi].clone().reshape([m, 1, 1, 1]),
                shape: vec![m],
            }),
            None if d.inputs.len() > 2 => Some(get(2)?),
            None => None,
        };
        Ok((
            Val {
                t: wq,
                shape: l.shape.clone(),
            },
            b,
        ))
    }
}

fn kernel(w: &Window) -> [usize; 2] {
    [w.kernel[0] as usize, w.kernel[1] as usize]
}

fn strides(w: &Window) -> [usize; 2] {
    [w.strides[0] as usize, w.strides[1] as usize]
}

/// `[top, left, bottom, right]` → `[(top, bottom), (left, right)]`.
fn pads(w: &Window) -> [(usize, usize); 2] {
    [
        (w.pads[0] as usize, w.pads[2] as usize),
        (w.pads[1] as usize, w.pads[3] as usize),
    ]
}

/// Element-wise `a op b` with NumPy broadcasting of the logical shapes.
fn binary(op: BinaryOp, a: &Val, b: &Val) -> Val {
    let rank = a.shape.len().max(b.shape.len());
    let (a, b) = (a.to_rank(rank), b.to_rank(rank));
    let shape: Vec<usize> = a
        .shape
        .iter()
        .zip(&b.shape)
        .map(|(x, y)| *x.max(y))
        .collect();
    let full = |t: Tensor<4>| t.expand(pad4(&shape));
    let t = match op {
        BinaryOp::Add => a.t + b.t,
        BinaryOp::Sub => a.t - b.t,
        BinaryOp::Mul => a.t * b.t,
        BinaryOp::Div => a.t / b.t,
        BinaryOp::Min => full(a.t).min_pair(full(b.t)),
        BinaryOp::Max => full(a.t).max_pair(full(b.t)),
        BinaryOp::Pow => full(a.t).powf(full(b.t)),
    };
    Val { t, shape }
}

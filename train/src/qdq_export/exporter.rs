//! [`Exporter`]: the master graph's ops as ONNX nodes at opset [`super::OPSET`], with the
//! stage's `QuantizeLinear → Clip → DequantizeLinear` chains inserted where the stage
//! quantizes (see the parent module for why the chain computes exactly fqc's quantizer).
//! Every IR op maps to the ONNX op it was imported from, with the same attributes, so an
//! exported stage re-imports to the same float graph.

use super::*;

/// Builds the ONNX graph of a master graph.
pub(super) struct Exporter<'g> {
    pub(super) g: &'g Graph,
    pub(super) graph: GraphProto,
    pub(super) model_name: String,
    /// ONNX name of each IR value.
    pub(super) names: HashMap<Value, String>,
    pub(super) used: HashSet<String>,
    /// Activation points already quantized: the name readers use instead.
    pub(super) read_as: HashMap<Value, String>,
    /// Initializers written.
    pub(super) written: HashSet<Value>,
    pub(super) node_names: HashSet<String>,
    pub(super) map: ExportMap,
}

impl<'g> Exporter<'g> {
    pub(super) fn new(g: &'g Graph) -> Exporter<'g> {
        Exporter {
            g,
            graph: GraphProto::default(),
            model_name: String::new(),
            names: HashMap::new(),
            used: HashSet::new(),
            read_as: HashMap::new(),
            written: HashSet::new(),
            node_names: HashSet::new(),
            map: ExportMap::default(),
        }
    }

    pub(super) fn unique(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "t" } else { base };
        let mut name = base.to_string();
        let mut k = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// Gives `v` the name `want` (or a unique variant of it).
    pub(super) fn claim(&mut self, v: Value, want: &str) {
        if !self.names.contains_key(&v) {
            let n = self.unique(want);
            self.names.insert(v, n);
        }
    }

    /// The ONNX name of `v` (its own name, made unique, or `v<id>`).
    pub(super) fn name(&mut self, v: Value) -> String {
        if let Some(n) = self.names.get(&v) {
            return n.clone();
        }
        let base = self
            .g
            .value(v)
            .name
            .clone()
            .unwrap_or_else(|| format!("v{}", v.0));
        let base = base.strip_suffix(".bn_folded").unwrap_or(&base).to_string();
        let n = self.unique(&base);
        self.names.insert(v, n.clone());
        n
    }

    /// The name a reader of `v` uses (the dequantized value of an activation point).
    pub(super) fn read(&mut self, v: Value) -> String {
        match self.read_as.get(&v) {
            Some(n) => n.clone(),
            None => self.name(v),
        }
    }

    pub(super) fn node_name(&mut self, want: &str) -> String {
        let base = if want.is_empty() { "node" } else { want };
        let mut name = base.to_string();
        let mut k = 1;
        while self.node_names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.node_names.insert(name.clone());
        name
    }

    /// Writes constant `v` as an initializer (its data, or `data` instead).
    pub(super) fn initializer(
        &mut self,
        v: Value,
        data: Option<&Tensor>,
    ) -> Result<String, ExportError> {
        let name = self.name(v);
        if self.written.insert(v) {
            let t = match data {
                Some(t) => t,
                None => self.g.const_tensor(v).ok_or_else(|| {
                    err(format!("constant `{name}` has no data (read from text?)"))
                })?,
            };
            self.graph.initializer.push(tensor_proto(&name, t));
        }
        Ok(name)
    }

    pub(super) fn push_init(&mut self, want: &str, t: &Tensor) -> String {
        let name = self.unique(want);
        self.graph.initializer.push(tensor_proto(&name, t));
        name
    }

    pub(super) fn push_node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        output: String,
        attribute: Vec<AttributeProto>,
    ) {
        let name = self.node_name(name);
        self.graph.node.push(NodeProto {
            input: inputs,
            output: vec![output],
            name: Some(name),
            op_type: Some(op_type.into()),
            domain: Some(String::new()),
            attribute,
            ..NodeProto::default()
        });
    }

    /// Q → integer Clip → DQ on `x`; returns the dequantized name.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn qdq(
        &mut self,
        x: &str,
        base: &str,
        scale: &str,
        zero_point: &str,
        qmin: &Tensor,
        qmax: &Tensor,
        axis: Option<i64>,
    ) -> String {
        let lo = self.push_init(&format!("{base}_qmin"), qmin);
        let hi = self.push_init(&format!("{base}_qmax"), qmax);
        let q = self.unique(&format!("{base}_quantized"));
        let c = self.unique(&format!("{base}_clipped"));
        let d = self.unique(&format!("{base}_dequantized"));
        let attrs = || axis.map(|a| vec![attr_int("axis", a)]).unwrap_or_default();
        self.push_node(
            "QuantizeLinear",
            &format!("{base}_QuantizeLinear"),
            vec![x.to_string(), scale.to_string(), zero_point.to_string()],
            q.clone(),
            attrs(),
        );
        self.push_node(
            "Clip",
            &format!("{base}_Clip"),
            vec![q, lo, hi],
            c.clone(),
            vec![],
        );
        self.push_node(
            "DequantizeLinear",
            &format!("{base}_DequantizeLinear"),
            vec![c, scale.to_string(), zero_point.to_string()],
            d.clone(),
            attrs(),
        );
        d
    }

    /// The Q/DQ chain of a layer's weight; returns the name the layer reads.
    pub(super) fn weight_qdq(
        &mut self,
        l: &fqc_passes::schedule::LayerInfo,
        h: &StageHandle<'_>,
    ) -> Result<String, ExportError> {
        if let Some(n) = self.read_as.get(&l.weight) {
            return Ok(n.clone());
        }
        let latent = h
            .latent(&l.name)
            .or_else(|| self.g.const_tensor(l.weight))
            .ok_or_else(|| err(format!("layer `{}` has no weight data", l.name)))?
            .clone();
        let wname = self.initializer(l.weight, Some(&latent))?;
        let levels = weight_levels(l.weights);
        let Some(scales) = h.weight_scales(&l.name) else {
            self.map.layers.push(LayerExport {
                layer: l.name.clone(),
                weight: wname.clone(),
                scale: None,
                zero_point: None,
                bias: None,
                levels,
            });
            self.read_as.insert(l.weight, wname.clone());
            return Ok(wname);
        };
        let m = scales.len();
        let scale = self.push_init(
            &format!("{wname}_scale"),
            &Tensor {
                shape: vec![m],
                data: TensorData::F32(scales.to_vec()),
            },
        );
        let zp = self.push_init(
            &format!("{wname}_zero_point"),
            &Tensor {
                shape: vec![m],
                data: TensorData::I8(vec![0; m]),
            },
        );
        let i8s = |v: i64| Tensor {
            shape: vec![],
            data: TensorData::I8(vec![v as i8]),
        };
        let d = self.qdq(
            &wname,
            &wname,
            &scale,
            &zp,
            &i8s(-levels),
            &i8s(levels),
            Some(l.channel_axis as i64),
        );
        self.map.layers.push(LayerExport {
            layer: l.name.clone(),
            weight: wname,
            scale: Some(scale),
            zero_point: Some(zp),
            bias: None,
            levels,
        });
        self.read_as.insert(l.weight, d.clone());
        Ok(d)
    }

    /// The Q/DQ chain of activation point `v`; later readers of `v` read its DQ.
    pub(super) fn act_qdq(&mut self, v: Value, signed: bool, qmax: i64, scale: f32, range: Range) {
        let x = self.name(v);
        let s = self.push_init(
            &format!("{x}_scale"),
            &Tensor {
                shape: vec![],
                data: TensorData::F32(vec![scale]),
            },
        );
        let (zp, lo, hi) = if signed {
            let t = |v: i64| Tensor {
                shape: vec![],
                data: TensorData::I8(vec![v as i8]),
            };
            (t(0), t(-qmax), t(qmax))
        } else {
            let t = |v: i64| Tensor {
                shape: vec![],
                data: TensorData::U8(vec![v as u8]),
            };
            (t(0), t(0), t(qmax))
        };
        let zpn = self.push_init(&format!("{x}_zero_point"), &zp);
        let d = self.qdq(&x, &x, &s, &zpn, &lo, &hi, None);
        self.map.acts.push(ActExport {
            value: v,
            tensor: x,
            scale: s,
            zero_point: zpn,
            signed,
            qmax,
            range,
            scale_value: scale,
        });
        self.read_as.insert(v, d);
    }

    /// The ONNX node for IR node `d` with operand names `inputs`.
    pub(super) fn node(
        &mut self,
        d: &fqc_ir::NodeData,
        mut inputs: Vec<String>,
    ) -> Result<(), ExportError> {
        let out = self.name(d.output);
        let mut attrs = Vec::new();
        let op_type = match &d.op {
            Op::Conv { window, group } => {
                window_attrs(&mut attrs, window, true);
                attrs.push(attr_int("group", *group as i64));
                "Conv"
            }
            Op::BatchNorm { epsilon } => {
                attrs.push(attr_float("epsilon", epsilon.0));
                "BatchNormalization"
            }
            Op::Relu => "Relu",
            Op::Clip { min, max } => {
                let bound = |this: &mut Self, v: f32, what: &str| {
                    if v.is_infinite() {
                        String::new()
                    } else {
                        let t = Tensor {
                            shape: vec![],
                            data: TensorData::F32(vec![v]),
                        };
                        this.push_init(&format!("{out}_{what}"), &t)
                    }
                };
                let lo = bound(self, min.0, "min");
                let hi = bound(self, max.0, "max");
                if !hi.is_empty() {
                    inputs.push(lo);
                    inputs.push(hi);
                } else if !lo.is_empty() {
                    inputs.push(lo);
                }
                "Clip"
            }
            Op::Binary(b) => match b {
                BinaryOp::Add => "Add",
                BinaryOp::Sub => "Sub",
                BinaryOp::Mul => "Mul",
                BinaryOp::Div => "Div",
                BinaryOp::Min => "Min",
                BinaryOp::Max => "Max",
                BinaryOp::Pow => "Pow",
            },
            Op::Sum => "Sum",
            Op::MaxPool { window } => {
                window_attrs(&mut attrs, window, true);
                attrs.push(attr_int("ceil_mode", i64::from(window.ceil_mode)));
                "MaxPool"
            }
            Op::AveragePool {
                window,
                count_include_pad,
            } => {
                if window.dilations != [1, 1] {
                    return Err(err(format!(
                        "node `{}`: dilated AveragePool needs opset 19 (fqc exports opset {OPSET})",
                        d.name
                    )));
                }
                window_attrs(&mut attrs, window, false);
                attrs.push(attr_int("ceil_mode", i64::from(window.ceil_mode)));
                attrs.push(attr_int("count_include_pad", i64::from(*count_include_pad)));
                "AveragePool"
            }
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                attrs.push(attr_float("alpha", alpha.0));
                attrs.push(attr_float("beta", beta.0));
                attrs.push(attr_int("transA", i64::from(*trans_a)));
                attrs.push(attr_int("transB", i64::from(*trans_b)));
                "Gemm"
            }
            Op::MatMul => "MatMul",
            Op::Flatten { axis } => {
                attrs.push(attr_int("axis", *axis as i64));
                "Flatten"
            }
            Op::Reshape { shape } => {
                // The batch extent is copied from the input (0); everything else is fixed.
                let dims: Vec<i64> = shape
                    .iter()
                    .map(|d| match d {
                        Dim::Batch => 0,
                        Dim::Fixed(n) => *n as i64,
                    })
                    .collect();
                let first_is_batch = matches!(shape.first(), Some(Dim::Batch));
                if shape.iter().skip(1).any(|d| *d == Dim::Batch)
                    || (first_is_batch
                        && !matches!(self.g.ty(d.inputs[0]).shape.0.first(), Some(Dim::Batch)))
                {
                    return Err(err(format!(
                        "node `{}`: a reshape that moves the batch axis cannot be exported",
                        d.name
                    )));
                }
                let t = Tensor {
                    shape: vec![dims.len()],
                    data: TensorData::I64(dims),
                };
                let s = self.push_init(&format!("{out}_shape"), &t);
                inputs.truncate(1);
                inputs.push(s);
                "Reshape"
            }
            Op::Concat { axis } => {
                attrs.push(attr_int("axis", *axis as i64));
                "Concat"
            }
            Op::Softmax { axis } => {
                attrs.push(attr_int("axis", *axis as i64));
                "Softmax"
            }
            Op::Lrn {
                size,
                alpha,
                beta,
                bias,
            } => {
                attrs.push(attr_int("size", *size as i64));
                attrs.push(attr_float("alpha", alpha.0));
                attrs.push(attr_float("beta", beta.0));
                attrs.push(attr_float("bias", bias.0));
                "LRN"
            }
            Op::Transpose { perm } => {
                attrs.push(attr_ints("perm", perm.iter().map(|&p| p as i64).collect()));
                "Transpose"
            }
            other => {
                return Err(err(format!(
                    "node `{}`: `{}` is not a float op of a master graph",
                    d.name,
                    other.name()
                )))
            }
        };
        let name = if d.name.is_empty() {
            format!("{op_type}_{}", d.output.0)
        } else {
            d.name.clone()
        };
        self.push_node(op_type, &name, inputs, out, attrs);
        Ok(())
    }
}

fn window_attrs(attrs: &mut Vec<AttributeProto>, w: &Window, dilations: bool) {
    attrs.push(attr_ints(
        "kernel_shape",
        w.kernel.iter().map(|&k| k as i64).collect(),
    ));
    attrs.push(attr_ints(
        "strides",
        w.strides.iter().map(|&k| k as i64).collect(),
    ));
    attrs.push(attr_ints(
        "pads",
        w.pads.iter().map(|&k| k as i64).collect(),
    ));
    if dilations {
        attrs.push(attr_ints(
            "dilations",
            w.dilations.iter().map(|&k| k as i64).collect(),
        ));
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..AttributeProto::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(f),
        ..AttributeProto::default()
    }
}

fn attr_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints,
        ..AttributeProto::default()
    }
}

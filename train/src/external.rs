//! The external fine-tuning hook: `--finetune-cmd 'CMD {in} {out}'`.
//!
//! [`ExternalCommand`] implements [`FineTune`]: after every stage of the schedule it
//!
//! 1. writes the stage as an ONNX model in QDQ form ([`crate::qdq_export`]) to
//!    `WORK/stage<i>_<label>.onnx` (`{in}`; `i` counts from 1);
//! 2. runs the command template through `sh -c` with `{in}` and `{out}`
//!    (`WORK/stage<i>_<label>.out.onnx`) substituted, shell-quoted, and `FQC_STAGE`
//!    (`w8a8`), `FQC_STAGE_INDEX` (0-based) and `FQC_STAGE_COUNT` in its environment;
//!    its stdout and stderr pass through, and the last stderr lines are kept for errors;
//! 3. reads `{out}` back and checks its structure is the exported one: the same nodes
//!    (op types, inputs, outputs, attributes), the same graph inputs and outputs, the
//!    same initializers (names, shapes, element types) — only initializer values may
//!    differ — and names the first difference otherwise;
//! 4. applies what changed through the [`StageHandle`]: latent weights
//!    ([`StageHandle::set_latent`]), per-channel weight scales (the weights' Q/DQ scale,
//!    [`StageHandle::set_weight_scales`]), activation ranges (from the activation's
//!    Q/DQ scale, [`qdq_export::range_for_scale`]: the range whose fqc quantizer has
//!    that scale, to the ulp), and biases of layers that have one ([`StageHandle::set_bias`];
//!    the driver writes them into the float master, so they hold in later stages).
//!    Zero points must stay 0 (fqc's quantizers have none); any other changed
//!    initializer (the input normalisation, the integer clip levels, reshape targets)
//!    is an error naming it, since fqc could not apply it.
//!
//! Failures are one-line errors naming the stage and the command: a non-zero exit status
//! (with the last stderr lines), a missing or undecodable `{out}`, a structure change,
//! an unusable value (e.g. a non-positive scale).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fqc_ir::{Tensor, TensorData, Value};
use fqc_onnx::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use fqc_passes::schedule::{FineTune, StageHandle, StageInfo};
use fqc_passes::{PassError, Range};
use prost::Message;

use crate::qdq_export::{self, ExportMap, QdqExport};

/// Largest `{out}` model read back (protobuf's own limit).
const MAX_MODEL_BYTES: u64 = 2 << 30;
/// Stderr lines quoted in an error.
const STDERR_LINES: usize = 8;

/// An error of the external hook (turned into a one-line [`PassError::Usage`]).
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("--finetune-cmd: {0}")]
    Template(String),
    #[error(transparent)]
    Export(#[from] qdq_export::ExportError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("fine-tuning command `{cmd}` failed with {status}{stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("fine-tuning command `{cmd}` wrote no {path}")]
    Missing { cmd: String, path: String },
    #[error("{path}: not an ONNX model: {msg}")]
    Decode { path: String, msg: String },
    #[error("{path}: the structure of the model changed (only initializer values may): {msg}")]
    Structure { path: String, msg: String },
    #[error("{path}: {msg}")]
    Apply { path: String, msg: String },
}

/// What the command changed in one stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageChanges {
    /// The stage label (`w8a8`).
    pub stage: String,
    /// Layers whose latent weights changed.
    pub latent: Vec<String>,
    /// Layers whose weight scales changed.
    pub weight_scales: Vec<String>,
    /// Activation points whose range changed, with the new range.
    pub ranges: Vec<(Value, Range)>,
    /// Layers whose bias changed.
    pub biases: Vec<String>,
}

impl StageChanges {
    pub fn is_empty(&self) -> bool {
        self.latent.is_empty()
            && self.weight_scales.is_empty()
            && self.ranges.is_empty()
            && self.biases.is_empty()
    }
}

/// The external-command fine-tuning hook (see the module docs).
#[derive(Debug)]
pub struct ExternalCommand {
    template: String,
    work_dir: PathBuf,
    /// What each stage's command changed, in stage order.
    pub history: Vec<StageChanges>,
}

impl ExternalCommand {
    /// A hook running `template` (which must mention `{in}` and `{out}`), writing its
    /// files to `work_dir` (created if missing).
    pub fn new(
        template: impl Into<String>,
        work_dir: impl Into<PathBuf>,
    ) -> Result<ExternalCommand, ExternalError> {
        let template = template.into();
        for p in ["{in}", "{out}"] {
            if !template.contains(p) {
                return Err(ExternalError::Template(format!(
                    "the command `{template}` does not mention {p} (e.g. `python3 train.py {{in}} {{out}}`)"
                )));
            }
        }
        let work_dir = work_dir.into();
        std::fs::create_dir_all(&work_dir).map_err(|source| ExternalError::Io {
            path: work_dir.display().to_string(),
            source,
        })?;
        Ok(ExternalCommand {
            template,
            work_dir,
            history: Vec::new(),
        })
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// The `{in}` and `{out}` paths of a stage.
    pub fn stage_paths(&self, stage: &StageInfo) -> (PathBuf, PathBuf) {
        stage_paths_in(&self.work_dir, stage.index, &stage.label)
    }

    /// The command line for `input` / `output`.
    pub fn command_line(&self, input: &Path, output: &Path) -> String {
        self.template
            .replace("{in}", &shell_quote(&input.display().to_string()))
            .replace("{out}", &shell_quote(&output.display().to_string()))
    }

    fn run_stage(
        &mut self,
        stage: &StageInfo,
        handle: &mut StageHandle<'_>,
    ) -> Result<(), ExternalError> {
        let export = qdq_export::export_stage(stage, handle)?;
        let (input, output) = self.stage_paths(stage);
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |source| ExternalError::Io { path, source }
        };
        std::fs::write(&input, export.to_bytes()).map_err(io(&input))?;
        match std::fs::remove_file(&output) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&output)(e)),
        }
        let cmd = self.command_line(&input, &output);
        run_command(&cmd, stage)?;
        if !output.is_file() {
            return Err(ExternalError::Missing {
                cmd,
                path: output.display().to_string(),
            });
        }
        let model = read_model(&output)?;
        let path = output.display().to_string();
        check_structure(&export.model, &model).map_err(|msg| ExternalError::Structure {
            path: path.clone(),
            msg,
        })?;
        let changes = apply(&export, &model, handle, stage)
            .map_err(|msg| ExternalError::Apply { path, msg })?;
        self.history.push(changes);
        Ok(())
    }
}

/// The `{in}` and `{out}` paths of stage `index` (from 0) labelled `label` in `dir`:
/// the files the hook writes (and, for `{out}`, removes before the command runs).
pub fn stage_paths_in(dir: &Path, index: usize, label: &str) -> (PathBuf, PathBuf) {
    let label: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let stem = format!("stage{}_{label}", index + 1);
    (
        dir.join(format!("{stem}.onnx")),
        dir.join(format!("{stem}.out.onnx")),
    )
}

impl FineTune for ExternalCommand {
    fn after_stage(
        &mut self,
        stage: &StageInfo,
        handle: &mut StageHandle<'_>,
    ) -> fqc_passes::Result<()> {
        self.run_stage(stage, handle).map_err(|e| {
            PassError::Usage(format!(
                "fine-tuning stage {}/{} ({}): {e}",
                stage.index + 1,
                stage.count,
                stage.label
            ))
        })
    }
}

/// `s` in single quotes for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `cmd` with `sh -c`, passing stdout through and teeing stderr (keeping its last
/// lines for the error).
fn run_command(cmd: &str, stage: &StageInfo) -> Result<(), ExternalError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("FQC_STAGE", &stage.label)
        .env("FQC_STAGE_INDEX", stage.index.to_string())
        .env("FQC_STAGE_COUNT", stage.count.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExternalError::Io {
            path: "sh".into(),
            source,
        })?;
    let mut last: VecDeque<String> = VecDeque::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if last.len() == STDERR_LINES {
                last.pop_front();
            }
            last.push_back(line);
        }
    }
    let status = child.wait().map_err(|source| ExternalError::Io {
        path: "sh".into(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let status = match status.code() {
        Some(c) => format!("exit status {c}"),
        None => format!("{status}"),
    };
    let lines: Vec<String> = last
        .into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let stderr = if lines.is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", lines.join(" | "))
    };
    Err(ExternalError::Command {
        cmd: cmd.to_string(),
        status,
        stderr,
    })
}

fn read_model(path: &Path) -> Result<ModelProto, ExternalError> {
    let p = path.display().to_string();
    let len = std::fs::metadata(path)
        .map_err(|source| ExternalError::Io {
            path: p.clone(),
            source,
        })?
        .len();
    if len > MAX_MODEL_BYTES {
        return Err(ExternalError::Decode {
            path: p,
            msg: format!("{len} bytes is larger than an ONNX protobuf can be"),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ExternalError::Io {
        path: p.clone(),
        source,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| ExternalError::Decode {
        path: p,
        msg: e.to_string(),
    })
}

fn elem_type(v: &ValueInfoProto) -> Option<i32> {
    match v.r#type.as_ref()?.value.as_ref()? {
        fqc_onnx::proto::type_proto::Value::TensorType(t) => t.elem_type,
        _ => None,
    }
}

fn dtype_name(code: i32) -> String {
    fqc_onnx::proto::tensor_proto::DataType::try_from(code)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("type {code}"))
}

fn node_label(n: &NodeProto) -> String {
    format!(
        "`{}` ({})",
        n.name.as_deref().unwrap_or(""),
        n.op_type.as_deref().unwrap_or("?")
    )
}

/// An attribute without its documentation, for comparison.
fn canonical(a: &AttributeProto) -> AttributeProto {
    AttributeProto {
        doc_string: None,
        ..a.clone()
    }
}

fn attrs_text(attrs: &[AttributeProto]) -> String {
    let mut names: Vec<&str> = attrs
        .iter()
        .map(|a| a.name.as_deref().unwrap_or(""))
        .collect();
    names.sort_unstable();
    names.join(", ")
}

/// Compares the structure of `got` with the exported `want` (see the module docs);
/// the error names the first difference.
pub fn check_structure(want: &ModelProto, got: &ModelProto) -> Result<(), String> {
    let (Some(w), Some(g)) = (want.graph.as_ref(), got.graph.as_ref()) else {
        return Err("the model has no graph".into());
    };
    let io = |what: &str, a: &[ValueInfoProto], b: &[ValueInfoProto]| -> Result<(), String> {
        let names = |v: &[ValueInfoProto]| -> Vec<String> {
            v.iter()
                .map(|x| x.name.clone().unwrap_or_default())
                .collect()
        };
        if names(a) != names(b) {
            return Err(format!(
                "graph {what}s are [{}], expected [{}]",
                names(b).join(", "),
                names(a).join(", ")
            ));
        }
        for (x, y) in a.iter().zip(b) {
            if elem_type(x) != elem_type(y) {
                return Err(format!(
                    "graph {what} `{}` changed its element type",
                    x.name.as_deref().unwrap_or("")
                ));
            }
        }
        Ok(())
    };
    io("input", &w.input, &g.input)?;
    io("output", &w.output, &g.output)?;

    for (i, (a, b)) in w.node.iter().zip(&g.node).enumerate() {
        let at = format!("node {i} {}", node_label(a));
        if a.op_type != b.op_type
            || a.domain.as_deref().unwrap_or("") != b.domain.as_deref().unwrap_or("")
        {
            return Err(format!("{at} became {}", node_label(b)));
        }
        if a.input != b.input {
            return Err(format!(
                "{at} reads [{}], expected [{}]",
                b.input.join(", "),
                a.input.join(", ")
            ));
        }
        if a.output != b.output {
            return Err(format!(
                "{at} writes [{}], expected [{}]",
                b.output.join(", "),
                a.output.join(", ")
            ));
        }
        let mut x: Vec<AttributeProto> = a.attribute.iter().map(canonical).collect();
        let mut y: Vec<AttributeProto> = b.attribute.iter().map(canonical).collect();
        x.sort_by(|p, q| p.name.cmp(&q.name));
        y.sort_by(|p, q| p.name.cmp(&q.name));
        if x != y {
            let names_differ = attrs_text(&x) != attrs_text(&y);
            let changed = x
                .iter()
                .zip(&y)
                .find(|(p, q)| p != q)
                .and_then(|(p, _)| p.name.clone())
                .unwrap_or_default();
            return Err(if names_differ {
                format!(
                    "{at} has attributes [{}], expected [{}]",
                    attrs_text(&y),
                    attrs_text(&x)
                )
            } else {
                format!("{at}: attribute `{changed}` changed")
            });
        }
    }
    match w.node.len().cmp(&g.node.len()) {
        std::cmp::Ordering::Greater => {
            return Err(format!(
                "{} nodes, expected {}: node {} {} is missing",
                g.node.len(),
                w.node.len(),
                g.node.len(),
                node_label(&w.node[g.node.len()])
            ))
        }
        std::cmp::Ordering::Less => {
            return Err(format!(
                "{} nodes, expected {}: node {} {} was added",
                g.node.len(),
                w.node.len(),
                w.node.len(),
                node_label(&g.node[w.node.len()])
            ))
        }
        std::cmp::Ordering::Equal => {}
    }

    let wi = qdq_export::initializers(want);
    let gi = qdq_export::initializers(got);
    if let Some(name) = wi.keys().find(|n| !gi.contains_key(*n)) {
        return Err(format!("initializer `{name}` is missing"));
    }
    if let Some(name) = gi.keys().find(|n| !wi.contains_key(*n)) {
        return Err(format!("initializer `{name}` was added"));
    }
    if g.initializer.len() != w.initializer.len() {
        return Err("an initializer name appears more than once".into());
    }
    for (name, a) in &wi {
        let b = gi[name];
        if a.dims != b.dims {
            return Err(format!(
                "initializer `{name}` has shape {:?}, expected {:?}",
                b.dims, a.dims
            ));
        }
        if a.data_type != b.data_type {
            return Err(format!(
                "initializer `{name}` is {}, expected {}",
                dtype_name(b.data_type.unwrap_or(0)),
                dtype_name(a.data_type.unwrap_or(0))
            ));
        }
    }
    if !g.sparse_initializer.is_empty() {
        return Err("sparse initializers were added".into());
    }
    Ok(())
}

fn decode(t: &TensorProto) -> Result<Tensor, String> {
    fqc_onnx::decode_tensor_proto(&t.encode_to_vec()).map_err(|e| {
        format!(
            "initializer `{}`: {e}",
            t.name.as_deref().unwrap_or_default()
        )
    })
}

/// The initializers whose values differ between the export and `got`, decoded.
fn changed_initializers(
    export: &QdqExport,
    got: &ModelProto,
) -> Result<BTreeMap<String, Tensor>, String> {
    let wi = qdq_export::initializers(&export.model);
    let mut out = BTreeMap::new();
    for (name, b) in qdq_export::initializers(got) {
        let Some(a) = wi.get(name) else { continue };
        let new = decode(b)?;
        if decode(a)? != new {
            out.insert(name.to_string(), new);
        }
    }
    Ok(out)
}

fn f32_values(name: &str, t: &Tensor) -> Result<Vec<f32>, String> {
    match &t.data {
        TensorData::F32(v) if v.iter().all(|x| x.is_finite()) => Ok(v.clone()),
        TensorData::F32(_) => Err(format!("initializer `{name}` holds non-finite values")),
        _ => Err(format!("initializer `{name}` must be float32")),
    }
}

/// Applies the changed values of `got` to the stage (see the module docs).
fn apply(
    export: &QdqExport,
    got: &ModelProto,
    handle: &mut StageHandle<'_>,
    stage: &StageInfo,
) -> Result<StageChanges, String> {
    let mut changed = changed_initializers(export, got)?;
    let mut out = StageChanges {
        stage: stage.label.clone(),
        ..StageChanges::default()
    };
    let ExportMap { layers, acts } = &export.map;
    // Check everything before changing anything.
    for zp in layers
        .iter()
        .filter_map(|l| l.zero_point.as_ref())
        .chain(acts.iter().map(|a| &a.zero_point))
    {
        if changed.contains_key(zp) {
            return Err(format!(
                "zero point `{zp}` changed: fqc's quantizers have zero point 0 (change the scale instead)"
            ));
        }
    }
    let known: Vec<&String> = layers
        .iter()
        .flat_map(|l| {
            std::iter::once(&l.weight)
                .chain(l.scale.as_ref())
                .chain(l.bias.as_ref())
        })
        .chain(acts.iter().map(|a| &a.scale))
        .collect();
    if let Some(other) = changed.keys().find(|k| !known.contains(k)) {
        return Err(format!(
            "initializer `{other}` changed, but fqc only takes back latent weights, biases, weight scales and activation scales"
        ));
    }

    for l in layers {
        if let Some(w) = changed.remove(&l.weight) {
            f32_values(&l.weight, &w)?;
            handle
                .set_latent(&l.layer, w)
                .map_err(|e| format!("weight `{}`: {e}", l.weight))?;
            out.latent.push(l.layer.clone());
        }
        if let Some(b) = l.bias.as_ref().and_then(|b| changed.remove(b)) {
            let name = l.bias.as_deref().unwrap_or_default();
            let v = f32_values(name, &b)?;
            handle
                .set_bias(&l.layer, v)
                .map_err(|e| format!("bias `{name}`: {e}"))?;
            out.biases.push(l.layer.clone());
        }
        if let Some(s) = l.scale.as_ref().and_then(|s| changed.remove(s)) {
            let name = l.scale.as_deref().unwrap_or_default();
            let v = f32_values(name, &s)?;
            handle
                .set_weight_scales(&l.layer, v)
                .map_err(|e| format!("weight scale `{name}`: {e}"))?;
            out.weight_scales.push(l.layer.clone());
        }
    }
    for a in acts {
        let Some(s) = changed.remove(&a.scale) else {
            continue;
        };
        let v = f32_values(&a.scale, &s)?;
        let scale = v.first().copied().unwrap_or(0.0);
        let range =
            qdq_export::range_for_scale(a.signed, a.qmax, scale, a.range.lo).ok_or_else(|| {
                format!(
                    "activation scale `{}` = {scale} must be positive and finite",
                    a.scale
                )
            })?;
        handle
            .set_range(a.value, range)
            .map_err(|e| format!("activation scale `{}`: {e}", a.scale))?;
        out.ranges.push((a.value, range));
    }
    Ok(out)
}

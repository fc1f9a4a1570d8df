//! One function per fuzz target (see the crate docs for what counts as a finding).
//!
//! Where a target has two modes, the first byte chooses: even, the rest builds an input
//! (structure-aware); odd, the rest is used as it is (raw bytes, for mutated real
//! files from the seed corpus). Each harness returns how far the input got (the last
//! stage it passed, e.g. `"imported"`), which the `reach` example tallies over a corpus.

use arbitrary::Unstructured;
use fqc_ir::{Graph, Tensor, TensorData};
use fqc_passes::{Pass, PassContext};
use prost::Message;

use crate::graphs;

/// How far an input got: the name of the last stage it passed.
pub type Reach = &'static str;

/// A fuzz target: the fuzzer's bytes in, how far they got out.
pub type Target = fn(&[u8]) -> Reach;

/// The targets, by name: what `fuzz/fuzz_targets/*.rs` and `scripts/fuzz.sh` use.
pub const TARGETS: &[(&str, Target)] = &[
    ("onnx_import", onnx_import),
    ("fqc_load", fqc_load),
    ("ir_text", ir_text),
    ("npy", npy),
    ("npz", npz),
    ("jit_vs_interp", jit_vs_interp),
];

/// Largest input (elements) a harness feeds a graph it could load: enough for every
/// shape the builders make, small enough for millions of executions.
const MAX_RUN_ELEMENTS: u64 = 1 << 16;

fn split_mode(data: &[u8]) -> Option<(bool, &[u8])> {
    let (&mode, rest) = data.split_first()?;
    Some((mode & 1 == 0, rest))
}

/// ONNX import, then (for what imports) verification, constant folding and dead-code
/// elimination, and an interpreter run on a small input.
pub fn onnx_import(data: &[u8]) -> Reach {
    let Some((built, rest)) = split_mode(data) else {
        return "empty";
    };
    let bytes = if built {
        match crate::onnx_model::model(&mut Unstructured::new(rest)) {
            Ok(m) => m.encode_to_vec(),
            Err(_) => return "too short to build",
        }
    } else {
        rest.to_vec()
    };
    let Ok(mut g) = fqc_onnx::import_bytes(&bytes) else {
        return "refused by the importer";
    };
    if let Err(e) = fqc_ir::verify(&g) {
        panic!("the importer returned a graph that does not verify: {e}");
    }
    let mut cx = PassContext::default();
    for pass in [
        &fqc_passes::const_fold::ConstFold as &dyn Pass,
        &fqc_passes::dce::Dce,
    ] {
        if pass.run(&mut g, &mut cx).is_err() {
            return "imported";
        }
        if let Err(e) = fqc_ir::verify(&g) {
            panic!("{} left a graph that does not verify: {e}", pass.name());
        }
    }
    match small_inputs(&g, 1) {
        Some(inputs) => match fqc_ir::interp::run(&g, &inputs) {
            Ok(_) => "imported, folded and run",
            Err(_) => "imported and folded",
        },
        None => "imported and folded",
    }
}

/// `.fqc` loading — of raw bytes, of a body under a correct header, or of a generated
/// integer graph saved and then mutated under a correct header — then, for what loads,
/// JIT compilation and a run compared bit for bit with the interpreter.
pub fn fqc_load(data: &[u8]) -> Reach {
    let Some((&mode, rest)) = data.split_first() else {
        return "empty";
    };
    let bytes = match mode % 3 {
        0 => rest.to_vec(),
        1 => fqc_runtime::artifact::frame(rest),
        _ => {
            let mut u = Unstructured::new(rest);
            let Ok(case) = graphs::case(&mut u) else {
                return "too short to build";
            };
            let Ok(saved) = fqc_runtime::artifact::try_save(&case.graph) else {
                return "built graph does not save";
            };
            let mut body = saved[fqc_runtime::artifact::HEADER_LEN..].to_vec();
            // A few byte edits the fuzzer chooses, under a correct header.
            let edits = u.int_in_range(0u8..=8).unwrap_or(0);
            for _ in 0..edits {
                let (Ok(at), Ok(byte)) = (u.arbitrary::<u16>(), u.arbitrary::<u8>()) else {
                    break;
                };
                if body.is_empty() {
                    break;
                }
                let at = usize::from(at) % body.len();
                body[at] = byte;
            }
            fqc_runtime::artifact::frame(&body)
        }
    };
    let Ok(g) = fqc_runtime::artifact::load(&bytes) else {
        return "refused by the loader";
    };
    if let Err(e) = fqc_ir::verify(&g) {
        panic!("the loader returned a graph that does not verify: {e}");
    }
    match small_inputs(&g, 2) {
        Some(inputs) => compare(&g, &inputs, None),
        None => "loaded",
    }
}

/// The IR text parser; what parses must print, and the printed text must parse and
/// print the same (the format's round trip).
pub fn ir_text(data: &[u8]) -> Reach {
    let Ok(text) = std::str::from_utf8(data) else {
        return "not UTF-8";
    };
    let Ok(g) = fqc_ir::text::parse(text) else {
        return "refused by the parser";
    };
    let printed = fqc_ir::text::print(&g);
    let again = match fqc_ir::text::parse(&printed) {
        Ok(g2) => fqc_ir::text::print(&g2),
        Err(e) => panic!("printed text does not parse: {e}\n{printed}"),
    };
    assert_eq!(
        printed, again,
        "print(parse(print(g))) differs from print(g)"
    );
    "parsed and round-tripped"
}

/// The `.npy` reader; what reads must write and read back to the same bytes.
pub fn npy(data: &[u8]) -> Reach {
    let Ok(t) = fqc_dataset::npy::read(data) else {
        return "refused by the reader";
    };
    let written = fqc_dataset::npy::write(&t);
    let back = fqc_dataset::npy::read(&written).expect("a written .npy reads back");
    assert_eq!(
        fqc_dataset::npy::write(&back),
        written,
        "npy write/read round trip"
    );
    let _ = fqc_dataset::to_model_input(t);
    "read and round-tripped"
}

/// The `.npz` reader and the labelled-set checks over it, from memory.
pub fn npz(data: &[u8]) -> Reach {
    let Ok(mut archive) = fqc_dataset::npz::Npz::from_bytes("fuzz.npz", data.to_vec()) else {
        return "not a zip archive";
    };
    let mut reach = "opened";
    for name in archive.names() {
        if archive.read(&name).is_ok() {
            reach = "an array read";
        }
    }
    for split in ["train", "test"] {
        if let Ok(set) = fqc_dataset::LabelledSet::from_npz(&mut archive, split) {
            let _ = set.check_finite();
            let _ = set.check_labels(10);
            if !set.is_empty() {
                let _ = set.batch(0, set.len().min(4));
            }
            reach = "a labelled set read";
        }
    }
    reach
}

/// A generated integer graph on the JIT and the interpreter: equal bit for bit.
pub fn jit_vs_interp(data: &[u8]) -> Reach {
    let mut u = Unstructured::new(data);
    let Ok(case) = graphs::case(&mut u) else {
        return "too short to build";
    };
    if fqc_ir::verify(&case.graph).is_err() {
        return "built graph does not verify";
    }
    let form = match u.int_in_range(0u8..=4).unwrap_or(0) {
        0 => None,
        1 => Some(fqc_codegen::ConvForm::NativeA),
        2 => Some(fqc_codegen::ConvForm::NativeB),
        3 => Some(fqc_codegen::ConvForm::Dense),
        _ => Some(fqc_codegen::ConvForm::Ternary),
    };
    compare(&case.graph, &case.inputs, form)
}

/// Runs `g` on the interpreter and on the JIT (`form` forced, or the automatic choice;
/// one thread and two, with every convolution's output channels split); a JIT that
/// refuses an op is not a finding, a panic or any difference is.
fn compare(g: &Graph, inputs: &[Tensor], form: Option<fqc_codegen::ConvForm>) -> Reach {
    let Ok(want) = fqc_ir::interp::run(g, inputs) else {
        return "the interpreter refuses";
    };
    let opts = fqc_codegen::CompileOptions {
        force_form: form,
        ..Default::default()
    };
    let jit = match fqc_codegen::compile_with(g, &opts) {
        Ok(j) => j,
        Err(fqc_codegen::CodegenError::Unsupported { .. }) => return "the JIT does not lower it",
        Err(e) => panic!("the JIT refuses a graph the interpreter runs: {e}"),
    };
    for threads in [1, 2] {
        let mut arena = fqc_codegen::Arena::new();
        arena
            .split_channels_from(threads, 0)
            .expect("helper threads start");
        let got = match jit.run_in(&mut arena, inputs) {
            Ok(got) => got,
            Err(e) => panic!("the JIT fails where the interpreter runs: {e}"),
        };
        assert_eq!(got.len(), want.len(), "output count");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.shape, b.shape, "output {i} shape");
            assert!(
                same_bits(&a.data, &b.data),
                "output {i} differs ({form:?}, {threads} thread(s)):\n jit {:?}\n int {:?}",
                a.data,
                b.data
            );
        }
    }
    "compared with the JIT"
}

/// Equal element for element, floats by their bits (so NaN equals the same NaN).
fn same_bits(a: &TensorData, b: &TensorData) -> bool {
    match (a, b) {
        (TensorData::F32(x), TensorData::F32(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        _ => a == b,
    }
}

/// A deterministic f32 input of batch `n` for each graph input, when every graph input
/// is f32 with fixed extents after the batch and the whole batch is small.
fn small_inputs(g: &Graph, n: u64) -> Option<Vec<Tensor>> {
    let mut inputs = Vec::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for &v in g.inputs() {
        let ty = g.ty(v);
        if ty.dtype != fqc_ir::DType::F32 {
            return None;
        }
        let numel = ty.shape.numel(n).filter(|&c| c <= MAX_RUN_ELEMENTS)?;
        let shape: Vec<usize> = ty.shape.0.iter().map(|d| d.resolve(n) as usize).collect();
        let data = (0..numel)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 41) as f32 - 20.0
            })
            .collect();
        inputs.push(Tensor {
            shape,
            data: TensorData::F32(data),
        });
    }
    Some(inputs)
}

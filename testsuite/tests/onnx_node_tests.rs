//! ONNX's own node tests (generated offline by `testsuite/scripts/gen_node_tests.py`) run
//! through the importer and the reference interpreter. Every test that does not pass must
//! be named in `testsuite/skips.txt` with its reason; a listed test that starts passing
//! fails the run so the list stays true. Tolerance: ONNX's own backend default
//! (`|got - want| <= 1e-7 + 1e-3 |want|`).

use std::path::Path;

use fqc_ir::interp::run;
use fqc_ir::TensorData;
use fqc_testsuite::{catch, compare, generated, skips, Class, Failure, Tally};

fn pb_files(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = (0..)
        .map(|i| dir.join(format!("{prefix}_{i}.pb")))
        .take_while(|p| p.exists())
        .collect();
    files.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    files
}

/// Imports the test's model with its non-data inputs frozen to this data set's values.
///
/// fqc compiles a network for fixed parameters: inputs that are not float tensors of rank
/// ≥ 1 (a Reshape's target shape, Clip's bounds, a Dropout ratio, integer operands), and
/// a Resize's or Upsample's scales and sizes, are parameters, not data. Node tests feed them as graph inputs, so they are turned into
/// initializers here (inputs with an initializer are constants to the importer), which is
/// how such a model is deployed. Returns the graph and the indices of the inputs still fed.
fn import_frozen(test: &Path, set: &Path) -> Result<(fqc_ir::Graph, Vec<usize>), Failure> {
    use fqc_onnx::proto::{tensor_proto::DataType, type_proto, ModelProto, TensorProto};
    use prost::Message;
    let harness = |e: String| Failure::new(Class::Panic, format!("harness: {e}"));
    let bytes = std::fs::read(test.join("model.onnx")).map_err(|e| harness(e.to_string()))?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| harness(e.to_string()))?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| harness("no graph".into()))?;
    let initialized: std::collections::HashSet<String> = graph
        .initializer
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    // Inputs that are parameters of the network whatever their type: a Resize's roi,
    // scales and sizes, an Upsample's scales (deployed models have them as constants).
    let parameters: std::collections::HashSet<String> = graph
        .node
        .iter()
        .filter(|n| matches!(n.op_type(), "Resize" | "Upsample"))
        .flat_map(|n| n.input.iter().skip(1).cloned())
        .collect();
    let mut fed = Vec::new();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !initialized.contains(i.name()))
        .map(|i| {
            let tensor = matches!(
                i.r#type.as_ref().and_then(|t| t.value.as_ref()),
                Some(type_proto::Value::TensorType(_))
            );
            (i.name().to_string(), tensor)
        })
        .collect();
    for (i, (name, tensor)) in inputs.iter().enumerate() {
        if !tensor {
            // An optional or sequence input: its `.pb` is not a TensorProto, and the
            // importer refuses the input's type itself (fed, so it says so).
            fed.push(i);
            continue;
        }
        let pb =
            std::fs::read(set.join(format!("input_{i}.pb"))).map_err(|e| harness(e.to_string()))?;
        let mut t = TensorProto::decode(pb.as_slice()).map_err(|e| harness(e.to_string()))?;
        if t.data_type() == DataType::Float as i32
            && !t.dims.is_empty()
            && !parameters.contains(name)
        {
            fed.push(i);
        } else {
            t.name = Some(name.clone());
            graph.initializer.push(t);
        }
    }
    let graph = fqc_onnx::import_bytes(&model.encode_to_vec()).map_err(|e| Failure::import(&e))?;
    Ok((graph, fed))
}

/// Compares one output with its reference: a value beyond ONNX's tolerance is a wrong
/// value; integer outputs of another width with the same values are an output-type
/// difference (fqc folds integer arithmetic as i64).
fn compare_output(i: usize, g: &fqc_ir::Tensor, w: &fqc_ir::Tensor) -> Result<(), Failure> {
    if g.shape != w.shape {
        return Err(Failure::new(
            Class::WrongShape,
            format!("output {i} has shape {:?}, expected {:?}", g.shape, w.shape),
        ));
    }
    let ints = |d: &TensorData| -> Option<Vec<i64>> {
        Some(match d {
            TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I64(v) => v.clone(),
            TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::F32(_) => return None,
        })
    };
    match (&g.data, &w.data) {
        (TensorData::F32(a), TensorData::F32(b)) => {
            let d = compare(a, b, 1e-3, 1e-7);
            if d.violations > 0 {
                return Err(Failure::new(
                    Class::WrongValue,
                    format!(
                        "output {i}: {} elements differ, max abs error {:e}",
                        d.violations, d.max_abs
                    ),
                ));
            }
            Ok(())
        }
        (a, b) if a == b => Ok(()),
        (a, b) => match (ints(a), ints(b)) {
            (Some(x), Some(y)) if x == y => Err(Failure::new(
                Class::OutputType,
                format!("output {i}: the values agree, but the element type differs"),
            )),
            _ => Err(Failure::new(
                Class::WrongValue,
                format!("output {i} differs in value"),
            )),
        },
    }
}

fn run_one(test: &Path) -> Result<(), Failure> {
    let harness = |e: String| Failure::new(Class::Panic, format!("harness: {e}"));
    let mut sets: Vec<_> = std::fs::read_dir(test)
        .map_err(|e| harness(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    sets.sort();
    for set in sets {
        let read = |p: &Path| -> Result<fqc_ir::Tensor, Failure> {
            let bytes = std::fs::read(p).map_err(|e| harness(e.to_string()))?;
            fqc_onnx::decode_tensor_proto(&bytes)
                .map_err(|e| harness(format!("{}: {e}", p.display())))
        };
        let (graph, fed_idx) = import_frozen(test, &set)?;
        let inputs = pb_files(&set, "input");
        let fed = fed_idx
            .iter()
            .map(|&i| read(&inputs[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let want = pb_files(&set, "output")
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let got = run(&graph, &fed).map_err(|e| Failure::new(Class::RunError, e.to_string()))?;
        if got.len() != want.len() {
            return Err(Failure::new(
                Class::WrongShape,
                format!("{} outputs, expected {}", got.len(), want.len()),
            ));
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            compare_output(i, g, w)?;
        }
    }
    Ok(())
}

#[test]
fn onnx_node_tests() {
    let Some(dir) = generated("node") else { return };
    let skips = skips("node");
    let mut tests: Vec<_> = std::fs::read_dir(&dir)
        .expect("read node test dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").exists())
        .collect();
    tests.sort();
    let mut tally = Tally::default();
    for test in &tests {
        let name = test.file_name().unwrap().to_string_lossy().into_owned();
        tally.record(&name, catch(|| run_one(test)), &skips);
    }
    tally.finish("node");
}

#!/usr/bin/env python3
"""Whole-model reference outputs computed with ONNX Runtime.

Writes testsuite/generated/models/<name>/{input_<i>.npy, ort_output_<i>.npy}
and testsuite/generated/models/manifest.json for:
  * light_<name>   onnx wheel's backend/test/data/light/light_*.onnx; input made by
                   onnx.backend.test.runner.Runner.generate_dummy_data(x, seed=0,
                   name=<model name>, random=False) exactly like ONNX's runner;
                   compared with the shipped light_<name>_output_0.pb.
  * pt_<Test>      every backend/test/data/pytorch-converted/test_*, whatever its ops
                   (fqc's test decides, against testsuite/skips.txt); inputs = shipped
                   test_data_set_0/input_*.pb. A model ONNX Runtime cannot run goes to
                   skipped.json with ORT's reason.
  * mnist_cnn / fashion_cnn  examples/*/…_cnn.onnx if present; input = first 16
                   x_test images, uint8 -> float32 unscaled (0..255), NCHW.
Models are not copied: manifest "model_path" is absolute.  Reference = ORT CPU with
graph optimizations disabled; ORT with default optimizations is cross-checked
(|a-b| <= 1e-5*|b| + 1e-5*max|b|) and mismatches are printed and noted.
.npy files are version 1.0, C order, dtype '<f4', '<i8' or '|u1' only.
Difference metrics vs shipped outputs: max_abs = max|ort-ref|,
max_rel = max|ort-ref| / max(|ref|, 1e-6) (elementwise).
Usage: python3 testsuite/scripts/gen_model_refs.py [--out DIR] [--only SUBSTR]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time

import numpy as np
import onnx
import onnx.version_converter
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_node_tests import supported_ops  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
NPY_DTYPES = {np.dtype("float32"): "<f4", np.dtype("int64"): "<i8", np.dtype("uint8"): "|u1"}


def save_npy(path: str, arr: np.ndarray) -> dict:
    """np.save with an allowed little-endian dtype; returns {file, dtype, shape}."""
    arr = np.asarray(arr)
    if arr.dtype not in NPY_DTYPES:
        raise TypeError(f"{path}: dtype {arr.dtype} not allowed in fixtures")
    arr = np.ascontiguousarray(arr.astype(np.dtype(NPY_DTYPES[arr.dtype]), copy=False))
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)
    return {"file": os.path.basename(path), "dtype": NPY_DTYPES[np.dtype(arr.dtype)],
            "shape": list(arr.shape)}


def session(path, optimize: bool) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def diffs(got: list, ref: list) -> tuple[float, float]:
    mabs = mrel = 0.0
    for a, b in zip(got, ref, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return float("inf"), float("inf")
        if a.size:
            d = np.abs(a - b)
            mabs = max(mabs, float(d.max()))
            mrel = max(mrel, float((d / np.maximum(np.abs(b), 1e-6)).max()))
    return mabs, mrel


def real_inputs(g: onnx.GraphProto) -> list:
    inits = {i.name for i in g.initializer}
    return [x for x in g.input if x.name not in inits]


def shape_constants(g: onnx.GraphProto) -> list:
    """Initializer-backed graph inputs used as a Reshape 'shape' operand."""
    shp = {n.input[1] for n in g.node if n.op_type == "Reshape" and len(n.input) > 1}
    inits = {i.name: i for i in g.initializer}
    return [x.name for x in g.input if x.name in inits and x.name in shp]


def run_model(name, model_path, feeds, shipped, out_root, notes, extra=None, split=False):
    """Run ORT twice, write npy files, return a manifest entry.

    split=True: model has a fixed batch of 1; run row by row, concatenate outputs."""
    def infer(sess):
        if not split:
            return sess.run(None, feeds)
        (k, v), = feeds.items()
        rows = [sess.run(None, {k: v[i:i + 1]}) for i in range(len(v))]
        return [np.concatenate(z) for z in zip(*rows)]

    model = onnx.load(model_path)
    g = model.graph
    d = os.path.join(out_root, name)
    os.makedirs(d)
    ops = sorted({n.op_type for n in g.node})
    src = model_path
    try:
        session(src, optimize=False)
    except Exception as exc:  # e.g. ORT lacks AveragePool-1 (opset 6 pytorch models)
        conv = onnx.version_converter.convert_version(model, 11)
        src = conv.SerializeToString()
        notes.append(f"ORT cannot load original ({str(exc).splitlines()[0][:90]}); "
                     "reference computed on an in-memory onnx.version_converter opset-11 copy")
    t0 = time.time()
    sess = session(src, optimize=False)
    outs = infer(sess)
    t_ref = time.time() - t0
    out_names = [o.name for o in sess.get_outputs()]
    opt = infer(session(src, optimize=True))
    for n_, a, b in zip(out_names, opt, outs, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        tol = 1e-5 * np.abs(b) + 1e-5 * (np.abs(b).max() if b.size else 0)
        if a.shape != b.shape or not np.all(np.abs(a - b) <= tol):
            msg = f"ORT optimized vs unoptimized mismatch on {n_}: max abs {np.abs(a - b).max():.3g}"
            print(f"  !! {name}: {msg}")
            notes.append(msg)
    entry = {"name": name, "model_path": os.path.abspath(model_path), "ops": ops,
             "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
             "inputs": [], "outputs": [], "notes": notes}
    for i, (k, v) in enumerate(feeds.items()):
        entry["inputs"].append({"name": k, **save_npy(os.path.join(d, f"input_{i}.npy"), v)})
    for i, (k, v) in enumerate(zip(out_names, outs, strict=True)):
        v = np.asarray(v)
        if v.dtype not in NPY_DTYPES:
            notes.append(f"output {k} converted from {v.dtype}")
            v = v.astype(np.float32 if v.dtype.kind == "f" else np.int64)
        entry["outputs"].append({"name": k, **save_npy(os.path.join(d, f"ort_output_{i}.npy"), v)})
    if shipped is not None:
        entry["shipped_max_abs_diff"], entry["shipped_max_rel_diff"] = diffs(outs, shipped)
    else:
        entry["shipped_max_abs_diff"] = entry["shipped_max_rel_diff"] = None
    entry.update(extra or {})
    entry["ort_seconds"] = round(t_ref, 3)
    sa, sr = entry["shipped_max_abs_diff"], entry["shipped_max_rel_diff"]
    shipped_s = "n/a" if sa is None else f"abs={sa:.3g} rel={sr:.3g}"
    print(f"{name:42s} ort {t_ref:6.2f}s  shipped diff {shipped_s:24s} ops={','.join(ops)}")
    return entry


def light_models(out_root):
    from onnx.backend.test.runner import Runner
    for path in sorted(glob.glob(os.path.join(DATA, "light", "light_*.onnx"))):
        mname = os.path.basename(path)[len("light_"):-len(".onnx")]
        g = onnx.load(path).graph
        notes, feeds, extra = [], {}, {}
        for x in real_inputs(g):
            if x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                feeds[x.name] = Runner.generate_dummy_data(x, seed=0, name=mname, random=False)
            else:  # ONNX's runner would raise here; nothing like this in onnx 1.23 data
                raise NotImplementedError(f"{mname}: non-float real input {x.name}")
        d = os.path.join(out_root, f"light_{mname}")
        inits = {i.name: i for i in g.initializer}
        shp = []
        for k, sname in enumerate(shape_constants(g)):
            arr = numpy_helper.to_array(inits[sname]).astype(np.int64)
            shp.append((sname, f"shape_{k}.npy", arr))
        extra["shape_inputs"] = [{"name": s, "file": f, "dtype": "<i8", "shape": list(a.shape),
                                  "value": a.tolist(), "has_initializer": True} for s, f, a in shp]
        if shp:
            notes.append("shape_inputs are graph inputs WITH an initializer (Reshape shape); "
                         "constants, not fed to ORT")
        notes.append("weights are ConstantOfShape outputs; input = generate_dummy_data "
                     "(arange(n)/n, random=False)")
        shipped_p = path[:-len(".onnx")] + "_output_0.pb"
        shipped = None
        if os.path.exists(shipped_p):
            shipped = [numpy_helper.to_array(onnx.load_tensor(shipped_p))]
        e = run_model(f"light_{mname}", path, feeds, shipped, out_root, notes, extra)
        for s, f, a in shp:
            save_npy(os.path.join(d, f), a)
        yield e


def pytorch_models(out_root, skipped):
    for d in sorted(glob.glob(os.path.join(DATA, "pytorch-converted", "test_*"))):
        path = os.path.join(d, "model.onnx")
        g = onnx.load(path).graph
        ds = os.path.join(d, "test_data_set_0")
        ins = [numpy_helper.to_array(onnx.load_tensor(p))
               for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                               key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
        outs = [numpy_helper.to_array(onnx.load_tensor(p))
                for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")),
                                key=lambda p: int(p.rsplit("_", 1)[1][:-3]))]
        real = real_inputs(g)
        assert len(real) == len(ins), (d, len(real), len(ins))
        notes, feeds = [], {}
        for x, a in zip(real, ins, strict=True):
            if a.dtype not in NPY_DTYPES:
                notes.append(f"input {x.name} is {a.dtype}")
            feeds[x.name] = a
        name = "pt_" + os.path.basename(d)[len("test_"):]
        try:
            yield run_model(name, path, feeds, outs, out_root, notes)
        except Exception as exc:  # ONNX Runtime cannot run it: no reference
            shutil.rmtree(os.path.join(out_root, name), ignore_errors=True)
            skipped.append((name, str(exc).splitlines()[0][:200]))


def example_models(out_root):
    for name, model, npz in [("mnist_cnn", "examples/mnist/mnist_cnn.onnx", "examples/mnist/mnist10k.npz"),
                             ("fashion_cnn", "examples/fashion/fashion_cnn.onnx",
                              "examples/fashion/fashion_test.npz")]:
        model, npz = os.path.join(ROOT, model), os.path.join(ROOT, npz)
        if not (os.path.exists(model) and os.path.exists(npz)):
            continue
        z = np.load(npz)
        x = z["x_test"][:16].astype(np.float32)  # uint8 -> float32, no scaling
        g = onnx.load(model).graph
        (inp,) = real_inputs(g)
        rank = len(inp.type.tensor_type.shape.dim)
        while x.ndim < rank:  # e.g. (N,28,28) -> (N,1,28,28)
            x = x[:, None]
        notes = ["input = first 16 x_test images, uint8 values as float32 (0..255), no scaling"]
        d0 = inp.type.tensor_type.shape.dim[0]
        split = d0.HasField("dim_value") and d0.dim_value == 1
        if split:
            notes.append("model batch dim is fixed to 1: ORT was run image by image; "
                         "input_0/ort_output_0 stack the 16 runs along axis 0")
        e = run_model(name, model, {inp.name: x}, None, out_root, notes, split=split)
        if "y_test" in z.files:
            e["labels"] = save_npy(os.path.join(out_root, name, "labels.npy"),
                                   z["y_test"][:16].astype(np.int64))
        yield e


def filetest_models(out_root):
    """The committed small models of testsuite/filetests/import/, batch 2, seeded input."""
    for model in sorted(glob.glob(os.path.join(ROOT, "testsuite", "filetests", "import", "*.onnx"))):
        name = os.path.splitext(os.path.basename(model))[0]
        (inp,) = real_inputs(onnx.load(model).graph)
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in inp.type.tensor_type.shape.dim]
        rng = np.random.default_rng(sum(map(ord, name)))
        x = rng.standard_normal(shape).astype(np.float32)
        yield run_model("ft_" + name, model, {inp.name: x}, None, out_root,
                        ["input = seeded standard normal, symbolic batch bound to 2"])


RANDOM_LIGHT = ["densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet"]


def light_random_models(out_root):
    """The light architectures with seeded random weights instead of the constant 0.02.

    With every weight equal, the light models' outputs are nearly uniform and hide
    numeric differences; here each ConstantOfShape weight becomes an initializer (conv
    and FC weights He-scaled normal, rank-1 parameters uniform in [0.5, 1.5], so BN
    variances stay positive) and ORT gives the reference, on the logits (a final
    Softmax is dropped so saturation cannot hide errors). The model is written next to
    the reference (git-ignored). The FC-heavy alexnet/zfnet512/vgg19 are left out (size).
    """
    for name in RANDOM_LIGHT:
        m = onnx.load(os.path.join(DATA, "light", f"light_{name}.onnx"))
        g = m.graph
        rng = np.random.default_rng(sum(map(ord, name)))
        inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        keep = []
        for n in g.node:
            if n.op_type != "ConstantOfShape" or n.input[0] not in inits:
                keep.append(n)
                continue
            shape = tuple(int(d) for d in inits[n.input[0]])
            if len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
                w = rng.standard_normal(shape) * np.sqrt((2.0 if len(shape) == 4 else 1.0) / fan_in)
            else:
                w = rng.uniform(0.5, 1.5, shape)
            for old in [i for i in g.initializer if i.name == n.output[0]]:
                g.initializer.remove(old)
            g.initializer.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
        # Compare logits, not probabilities: a saturated softmax would hide errors.
        if keep[-1].op_type == "Softmax" and keep[-1].output[0] == g.output[0].name:
            logits = keep.pop().input[0]
            del g.output[:]
            g.output.append(helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
        del g.node[:]
        g.node.extend(keep)
        d = os.path.join(out_root, "_lightrand_models")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{name}.onnx")
        onnx.save(m, path)
        (inp,) = [x for x in real_inputs(g)]
        rng2 = np.random.default_rng(7)
        shape = [dd.dim_value for dd in inp.type.tensor_type.shape.dim]
        x = rng2.uniform(-1, 1, shape).astype(np.float32)
        yield run_model(f"lightrand_{name}", path, {inp.name: x}, None, out_root,
                        ["light architecture with seeded random weights (see light_random_models)"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "testsuite", "generated"))
    args = ap.parse_args()
    out_root = os.path.join(args.out, "models")
    if os.path.exists(out_root):
        shutil.rmtree(out_root)
    os.makedirs(out_root)
    t0 = time.time()
    skipped, manifest = [], []
    manifest += list(light_models(out_root))
    manifest += list(pytorch_models(out_root, skipped))
    manifest += list(example_models(out_root))
    manifest += list(filetest_models(out_root))
    manifest += list(light_random_models(out_root))
    with open(os.path.join(out_root, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_root, "skipped.json"), "w") as f:
        json.dump([{"name": n, "reason": why} for n, why in skipped], f, indent=1)
        f.write("\n")
    print(f"wrote {len(manifest)} models to {out_root} in {time.time() - t0:.1f}s")
    supported = supported_ops()
    for entry in manifest:
        extra = sorted(set(entry["ops"]) - supported)
        if extra:
            print(f"  {entry['name']}: ops fqc does not import: {','.join(extra)}")
    print(f"{len(skipped)} pytorch-converted models without an ONNX Runtime reference:")
    for n, why in skipped:
        print(f"  {n}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

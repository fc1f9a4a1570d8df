#!/usr/bin/env python3
"""Fixture for train/tests/external_hook.rs: a stand-in for a user's training script.

    edit_weights.py MODE IN OUT [--input X.npy --ort-out Y.npy]

Every mode first loads IN with onnx (checker included) and runs it once in ONNX Runtime,
proving fqc's QDQ export loads and runs there. Then:

  edit       scales `conv1.weight` by 1.5, adds 0.25 to `conv2.bias`, scales
             `fc1.weight_scale` by 1.1 and the first activation scale after the
             input's by 1.25, writes OUT (what a fine-tuning run would change)
  identity   writes IN unchanged to OUT; with --input, also runs the model on that
             .npy with ORT's graph optimizations off (its QDQ fusions compute the
             quantized layers differently) and saves the first output to --ort-out
  drop-node  deletes the first Relu node (a structure change fqc must refuse)
  zero-point sets an activation zero point to 3 (a value fqc cannot take back)
  fail       prints to stderr and exits with status 3
  no-output  exits 0 without writing OUT
"""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def run_ort(path, x=None, exact=False):
    so = ort.SessionOptions()
    if exact:
        # ORT's QDQ fusions (QLinearConv, ...) and constant folding compute the
        # quantized layers differently; unoptimized, the graph runs op by op as written.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if x is None:
        shape = [d if isinstance(d, int) else 2 for d in inp.shape]
        x = (np.random.default_rng(0).random(shape) * 255).astype(np.float32)
    y = sess.run(None, {inp.name: x})[0]
    if not np.all(np.isfinite(y)):
        sys.exit("onnxruntime produced non-finite outputs")
    return y


def initializer(model, name):
    for t in model.graph.initializer:
        if t.name == name:
            return t
    sys.exit(f"no initializer `{name}` (have: {[t.name for t in model.graph.initializer]})")


def replace(model, name, array):
    t = initializer(model, name)
    t.CopyFrom(numpy_helper.from_array(array, name))


def act_scales(model):
    """Scale inputs of activation QuantizeLinear nodes (scalar scales), in node order."""
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in inits:
            out.append(n.input[1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--input")
    ap.add_argument("--ort-out")
    a = ap.parse_args()

    model = onnx.load(a.inp)
    onnx.checker.check_model(model)
    run_ort(a.inp)

    if a.mode == "fail":
        print("boom: the training script crashed", file=sys.stderr)
        sys.exit(3)
    if a.mode == "no-output":
        return
    if a.mode == "identity":
        if a.input:
            y = run_ort(a.inp, np.load(a.input).astype(np.float32), exact=True)
            np.save(a.ort_out, y)
    elif a.mode == "edit":
        w = numpy_helper.to_array(initializer(model, "conv1.weight"))
        replace(model, "conv1.weight", (w * np.float32(1.5)).astype(np.float32))
        scales = act_scales(model)
        name = scales[1]
        s = numpy_helper.to_array(initializer(model, name))
        replace(model, name, (s * np.float32(1.25)).astype(np.float32))
        b = numpy_helper.to_array(initializer(model, "conv2.bias"))
        replace(model, "conv2.bias", (b + np.float32(0.25)).astype(np.float32))
        fs = numpy_helper.to_array(initializer(model, "fc1.weight_scale"))
        replace(model, "fc1.weight_scale", (fs * np.float32(1.1)).astype(np.float32))
        print(f"edited conv1.weight, conv2.bias, fc1.weight_scale and {name}")
    elif a.mode == "drop-node":
        relu = next(i for i, n in enumerate(model.graph.node) if n.op_type == "Relu")
        del model.graph.node[relu]
    elif a.mode == "zero-point":
        zp = act_scales(model)[1].removesuffix("_scale") + "_zero_point"
        z = numpy_helper.to_array(initializer(model, zp))
        replace(model, zp, (z + 3).astype(z.dtype))
    else:
        sys.exit(f"unknown mode {a.mode}")
    onnx.save(model, a.out)
    if a.mode == "edit":
        run_ort(a.out)


if __name__ == "__main__":
    main()

"""Writes the fuzz seed corpus, fuzz/seeds/<target>/, from files in the repository.

Each target's first byte selects a mode (fuzzing/src/targets.rs): for onnx_import and
fqc_load an odd first byte (1) feeds the rest as a raw file, so real models are seeds
the fuzzer mutates; 0 builds an input from the bytes. Run from the repository root:
python3 fuzz/make_seeds.py (needs numpy). The seeds are committed; rerun after adding
filetests.
"""
import glob
import io
import os
import shutil
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for p in sorted(glob.glob(os.path.join(ROOT, "testsuite/filetests/*/*.onnx"))):
        with open(p, "rb") as f:
            put("onnx_import", "raw_" + os.path.basename(p), b"\x01" + f.read())
    for i in range(4):
        put("onnx_import", f"built_{i}", bytes([0]) + bytes((i * 37 + k * 11) % 256 for k in range(256)))
    with open(os.path.join(ROOT, "examples/mnist/mnist_cnn_w2a4.fqc"), "rb") as f:
        fqc = f.read()
    put("fqc_load", "raw_mnist_w2a4.fqc", b"\x00" + fqc)
    put("fqc_load", "body_mnist_w2a4", b"\x01" + fqc[28:])
    with open(os.path.join(ROOT, "runtime/tests/fixtures/mnist_cnn_w2a4.format2.fqc"), "rb") as f:
        put("fqc_load", "raw_mnist_w2a4.format2.fqc", b"\x00" + f.read())
    for i in range(4):
        put("fqc_load", f"built_{i}", bytes([2]) + bytes((i * 53 + k * 7) % 256 for k in range(200)))
    for p in sorted(glob.glob(os.path.join(ROOT, "testsuite/tests/snapshots/pass_snapshots__*.snap")))[:12]:
        with open(p, encoding="utf-8") as f:
            text = f.read().split("---\n", 2)[2]
        put("ir_text", os.path.basename(p).replace("pass_snapshots__", "").replace(".snap", ".fqir"), text.encode())
    arrays = {
        "f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "u8": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "i64": np.array([0, 1, 9], dtype=np.int64),
        "i8": np.array([-1, 0, 1], dtype=np.int8),
        "i32": np.zeros((2, 2), dtype=np.int32),
        "bool": np.array([True, False]),
        "scalar": np.float32(1.5),
    }
    for name, a in arrays.items():
        b = io.BytesIO()
        np.save(b, a)
        put("npy", name + ".npy", b.getvalue())
    x = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    for name, kw in [
        ("split", dict(x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([1, 0]))),
        ("plain", dict(x=x.astype(np.float32), y=np.array([3, 4], dtype=np.int32))),
    ]:
        b = io.BytesIO()
        np.savez(b, **kw)
        put("npz", name + ".npz", b.getvalue())
    b = io.BytesIO()
    np.savez_compressed(b, x_test=x, y_test=np.array([0, 1], dtype=np.uint8))
    put("npz", "deflated.npz", b.getvalue())
    for i in range(4):
        put("jit_vs_interp", f"built_{i}", bytes((i * 91 + k * 13) % 256 for k in range(160)))


if __name__ == "__main__":
    main()

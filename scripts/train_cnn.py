#!/usr/bin/env python3
"""Train a small CNN (Conv -> BatchNorm -> ReLU blocks, MaxPool, Gemm head) on
MNIST or Fashion-MNIST with pure jax + numpy, then export it to ONNX in the
shape PyTorch's exporter produces, and cross-check the export with
onnxruntime.

Exported graph (opset 13, ir_version 8): input ``x`` float32 [N,1,28,28]
holding *raw* pixel values 0..255 (uint8 cast to float; N symbolic); output
``logits`` float32 [N,10].  Preprocessing lives inside the model:
``/Sub`` (x - mean*255) and ``/Div`` (/ std*255) with scalar initializers.
Then per block ``/convK/Conv`` (3x3, pads 1, bias) -> ``/bnK/BatchNormalization``
(eval mode, running stats, epsilon 1e-5) -> ``/reluK/Relu`` [-> ``/poolJ/MaxPool``
2x2 s2], then a flatten -- MNIST: legacy ``x.view(x.size(0), -1)`` pattern
(Shape, Gather, Unsqueeze, Concat, Reshape); Fashion: one ``Flatten(axis=1)`` --
then ``/fc1/Gemm`` (transB=1) -> ``/relu_fc/Relu`` -> ``/fc2/Gemm`` (transB=1).

Training: BN in train mode (batch statistics; running stats momentum 0.1 with
unbiased variance, like PyTorch), cross-entropy, AdamW with cosine-decayed LR,
random +-2 px shifts (and horizontal flips for Fashion).  Seeded.

Usage:
  python scripts/train_cnn.py --dataset mnist --out examples/mnist/mnist_cnn.onnx
  python scripts/train_cnn.py --dataset fashion --out examples/fashion/fashion_cnn.onnx
"""
import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPS = 1e-5
MOMENTUM = 0.1
DATASETS = {
    # train file, test file, (mean, std) of pixels/255, default arch, hidden,
    # epochs, flatten style, horizontal flip augmentation
    "mnist": dict(train="examples/mnist/mnist10k.npz", test="examples/mnist/mnist10k.npz",
                  norm=(0.1307, 0.3081), channels="16,P,32,P", hidden=64, epochs=15,
                  flatten="legacy", flip=False),
    "fashion": dict(train="data/fashion_train.npz", test="data/fashion_test.npz",
                    norm=(0.2860, 0.3530), channels="16,P,32,P,64", hidden=128,
                    epochs=8, flatten="flatten", flip=True),
}


def parse_arch(s):
    """'16,P,32,P' -> [16, 'P', 32, 'P'] (ints: conv output channels, P: maxpool)."""
    return [t.upper() if t.upper() == "P" else int(t) for t in s.split(",")]


def init_params(arch, hidden, seed):
    """PyTorch-default-like init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    rng = np.random.default_rng(seed)
    params, state, cin, hw, k = {}, {}, 1, 28, 0
    u = lambda shape, fan: rng.uniform(-1, 1, shape).astype(np.float32) / np.sqrt(fan)
    for a in arch:
        if a == "P":
            hw //= 2
            continue
        k += 1
        params[f"conv{k}.weight"] = u((a, cin, 3, 3), cin * 9)
        params[f"conv{k}.bias"] = u((a,), cin * 9)
        params[f"bn{k}.weight"] = np.ones(a, np.float32)
        params[f"bn{k}.bias"] = np.zeros(a, np.float32)
        state[f"bn{k}.running_mean"] = np.zeros(a, np.float32)
        state[f"bn{k}.running_var"] = np.ones(a, np.float32)
        cin = a
    flat = cin * hw * hw
    params["fc1.weight"], params["fc1.bias"] = u((hidden, flat), flat), u((hidden,), flat)
    params["fc2.weight"], params["fc2.bias"] = u((10, hidden), hidden), u((10,), hidden)
    return params, state


def forward(params, state, x, arch, norm, train):
    """x: raw pixels float32 [B,1,28,28]. Returns (logits, new_state)."""
    h = ((x - norm[0]) / norm[1]).transpose(0, 2, 3, 1)  # NHWC inside: faster on XLA:CPU
    new_state, k = {}, 0
    for a in arch:
        if a == "P":
            b, hh, ww, c = h.shape  # 2x2/2 max pool; reshape-max is much faster than
            h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))  # reduce_window on CPU
            continue
        k += 1
        w = params[f"conv{k}.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
        h = jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = h + params[f"conv{k}.bias"]
        rm, rv = state[f"bn{k}.running_mean"], state[f"bn{k}.running_var"]
        if train:
            mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
            n = h.shape[0] * h.shape[1] * h.shape[2]
            new_state[f"bn{k}.running_mean"] = (1 - MOMENTUM) * rm + MOMENTUM * mean
            new_state[f"bn{k}.running_var"] = (1 - MOMENTUM) * rv + MOMENTUM * var * n / (n - 1)
        else:
            mean, var = rm, rv
        scale = params[f"bn{k}.weight"] / jnp.sqrt(var + EPS)
        h = jax.nn.relu((h - mean) * scale + params[f"bn{k}.bias"])
    h = h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1)  # flatten in PyTorch (C,H,W) order
    h = jax.nn.relu(h @ params["fc1.weight"].T + params["fc1.bias"])
    return h @ params["fc2.weight"].T + params["fc2.bias"], (new_state if train else state)


def make_fns(arch, norm, wd):
    def loss_fn(params, state, x, y):
        logits, new_state = forward(params, state, x, arch, norm, True)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), new_state

    @jax.jit
    def train_step(params, state, opt, x, y, lr):
        (loss, new_state), g = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        t = opt["t"] + 1
        b1, b2 = 0.9, 0.999
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, opt["m"], g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, opt["v"], g)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        new = {}
        for name, p in params.items():  # AdamW: decoupled weight decay on conv/fc weights
            decay = wd if name.endswith("weight") and not name.startswith("bn") else 0.0
            step = (m[name] / c1) / (jnp.sqrt(v[name] / c2) + 1e-8)
            new[name] = p - lr * (step + decay * p)
        return new, new_state, {"t": t, "m": m, "v": v}, loss

    @jax.jit
    def eval_logits(params, state, x):
        return forward(params, state, x, arch, norm, False)[0]

    return train_step, eval_logits


def augment(xb, rng, flip):
    """Random shifts of +-2 px (zero fill) and optional horizontal flips."""
    b = len(xb)
    pad = np.pad(xb, ((0, 0), (0, 0), (2, 2), (2, 2)))
    oy, ox = rng.integers(0, 5, b), rng.integers(0, 5, b)
    rows = oy[:, None] + np.arange(28)
    cols = ox[:, None] + np.arange(28)
    if flip:
        f = rng.random(b) < 0.5
        cols[f] = cols[f, ::-1]
    return pad[np.arange(b)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]


def predict(eval_logits, params, state, x, bs=500):
    out = []
    for i in range(0, len(x), bs):
        out.append(np.asarray(eval_logits(params, state, jnp.asarray(x[i:i + bs], jnp.float32))))
    return np.concatenate(out)


def export_onnx(params, state, arch, norm, flatten, path):
    inits = [numpy_helper.from_array(np.array(norm[0], np.float32), "mean"),
             numpy_helper.from_array(np.array(norm[1], np.float32), "std")]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["/Sub_output_0"], name="/Sub"),
             helper.make_node("Div", ["/Sub_output_0", "std"], ["/Div_output_0"], name="/Div")]
    tensors, k = {**params, **state}, 0  # initializers in PyTorch module order
    for a in arch:
        if a != "P":
            k += 1
            names = [f"conv{k}.weight", f"conv{k}.bias", f"bn{k}.weight", f"bn{k}.bias",
                     f"bn{k}.running_mean", f"bn{k}.running_var"]
            inits += [numpy_helper.from_array(np.asarray(tensors[n], np.float32), n) for n in names]
    for n in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]:
        inits.append(numpy_helper.from_array(np.asarray(tensors[n], np.float32), n))
    cur, k, p = "/Div_output_0", 0, 0
    for a in arch:
        if a == "P":
            p += 1
            nodes.append(helper.make_node(
                "MaxPool", [cur], [f"/pool{p}/MaxPool_output_0"], name=f"/pool{p}/MaxPool",
                ceil_mode=0, kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2]))
            cur = f"/pool{p}/MaxPool_output_0"
            continue
        k += 1
        nodes.append(helper.make_node(
            "Conv", [cur, f"conv{k}.weight", f"conv{k}.bias"], [f"/conv{k}/Conv_output_0"],
            name=f"/conv{k}/Conv", dilations=[1, 1], group=1, kernel_shape=[3, 3],
            pads=[1, 1, 1, 1], strides=[1, 1]))
        nodes.append(helper.make_node(
            "BatchNormalization", [f"/conv{k}/Conv_output_0", f"bn{k}.weight", f"bn{k}.bias",
                                   f"bn{k}.running_mean", f"bn{k}.running_var"],
            [f"/bn{k}/BatchNormalization_output_0"], name=f"/bn{k}/BatchNormalization",
            epsilon=EPS, momentum=1 - MOMENTUM))
        nodes.append(helper.make_node("Relu", [f"/bn{k}/BatchNormalization_output_0"],
                                      [f"/relu{k}/Relu_output_0"], name=f"/relu{k}/Relu"))
        cur = f"/relu{k}/Relu_output_0"
    if flatten == "legacy":  # x.view(x.size(0), -1) as exported by torch.onnx (opset 13)
        unsq_axes = f"onnx::Unsqueeze_{len(inits) + 1}"
        inits.append(numpy_helper.from_array(np.array([0], np.int64), unsq_axes))
        nodes += [
            helper.make_node("Shape", [cur], ["/Shape_output_0"], name="/Shape"),
            helper.make_node("Constant", [], ["/Constant_output_0"], name="/Constant",
                             value=numpy_helper.from_array(np.array(0, np.int64))),
            helper.make_node("Gather", ["/Shape_output_0", "/Constant_output_0"],
                             ["/Gather_output_0"], name="/Gather", axis=0),
            helper.make_node("Unsqueeze", ["/Gather_output_0", unsq_axes],
                             ["/Unsqueeze_output_0"], name="/Unsqueeze"),
            helper.make_node("Constant", [], ["/Constant_1_output_0"], name="/Constant_1",
                             value=numpy_helper.from_array(np.array([-1], np.int64))),
            helper.make_node("Concat", ["/Unsqueeze_output_0", "/Constant_1_output_0"],
                             ["/Concat_output_0"], name="/Concat", axis=0),
            helper.make_node("Reshape", [cur, "/Concat_output_0"], ["/Reshape_output_0"],
                             name="/Reshape")]
        cur = "/Reshape_output_0"
    else:
        nodes.append(helper.make_node("Flatten", [cur], ["/Flatten_output_0"],
                                      name="/Flatten", axis=1))
        cur = "/Flatten_output_0"
    nodes += [
        helper.make_node("Gemm", [cur, "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"],
                         name="/fc1/Gemm", alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu_fc/Relu_output_0"],
                         name="/relu_fc/Relu"),
        helper.make_node("Gemm", ["/relu_fc/Relu_output_0", "fc2.weight", "fc2.bias"],
                         ["logits"], name="/fc2/Gemm", alpha=1.0, beta=1.0, transB=1)]
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="fqc-scripts-train_cnn", producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.save(model, path)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=DATASETS, required=True)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--channels", help="e.g. 16,P,32,P (ints: conv channels, P: 2x2 maxpool)")
    ap.add_argument("--hidden", type=int, help="width of the hidden Gemm")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=1e-4, help="AdamW decoupled weight decay")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = DATASETS[args.dataset]
    arch = parse_arch(args.channels or cfg["channels"])
    hidden, epochs = args.hidden or cfg["hidden"], args.epochs or cfg["epochs"]
    norm = (np.float32(cfg["norm"][0] * 255), np.float32(cfg["norm"][1] * 255))
    tr, te = np.load(os.path.join(REPO, cfg["train"])), np.load(os.path.join(REPO, cfg["test"]))
    xtr, ytr, xte, yte = tr["x_train"], tr["y_train"], te["x_test"], te["y_test"]
    print(f"{args.dataset}: train {xtr.shape} test {xte.shape}; arch {arch} hidden {hidden}; "
          f"epochs {epochs}; norm sub {norm[0]} div {norm[1]}")

    params, state = init_params(arch, hidden, args.seed)
    params, state = jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, state)
    opt = {"t": jnp.zeros((), jnp.float32), "m": jax.tree.map(jnp.zeros_like, params),
           "v": jax.tree.map(jnp.zeros_like, params)}
    train_step, eval_logits = make_fns(arch, norm, args.wd)
    rng = np.random.default_rng(args.seed + 1)
    steps_per_epoch = len(xtr) // args.batch
    total = steps_per_epoch * epochs
    t0 = time.time()
    for ep in range(epochs):
        perm, te0, losses = rng.permutation(len(xtr)), time.time(), []
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = augment(xtr[idx], rng, cfg["flip"]).astype(np.float32)
            t = ep * steps_per_epoch + s
            lr = args.lr * 0.5 * (1 + np.cos(np.pi * t / total))
            params, state, opt, loss = train_step(params, state, opt, jnp.asarray(xb),
                                                  jnp.asarray(ytr[idx]), jnp.float32(lr))
            losses.append(loss)
        acc = np.mean(predict(eval_logits, params, state, xte).argmax(1) == yte)
        print(f"epoch {ep + 1}/{epochs}: loss {float(np.mean(jnp.stack(losses))):.4f} "
              f"test acc {acc:.4f} ({time.time() - te0:.1f}s)", flush=True)
    train_time = time.time() - t0
    jax_logits = predict(eval_logits, params, state, xte)
    jax_pred = jax_logits.argmax(1)
    jax_acc = np.mean(jax_pred == yte)

    params = {k: np.asarray(v) for k, v in params.items()}
    state = {k: np.asarray(v) for k, v in state.items()}
    export_onnx(params, state, arch, norm, cfg["flatten"], args.out)
    onnx.checker.check_model(onnx.load(args.out), full_check=True)
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    ort_logits = np.concatenate([sess.run(["logits"], {"x": xte[i:i + 1000].astype(np.float32)})[0]
                                 for i in range(0, len(xte), 1000)])
    ort_pred = ort_logits.argmax(1)
    ort_acc = np.mean(ort_pred == yte)
    agree = np.mean(ort_pred == jax_pred)
    print(f"training wall time {train_time:.1f}s ({train_time / 60:.1f} min)")
    print(f"jax eval test top-1 {jax_acc:.4f}; ORT test top-1 {ort_acc:.4f} "
          f"({int(np.sum(ort_pred == yte))}/{len(yte)}); prediction agreement {agree:.5f}; "
          f"max |logit diff| {np.max(np.abs(ort_logits - jax_logits)):.2e}")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    assert agree >= 0.999, "ORT and jax predictions disagree"
    assert abs(ort_acc - jax_acc) <= 0.001, "ORT and jax accuracies differ"


if __name__ == "__main__":
    main()

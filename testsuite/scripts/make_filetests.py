"""Builds the small ONNX models under testsuite/filetests/import/ (committed).

Each is a CNN pattern fqc must import and, later, quantize: a Conv-BN-ReLU chain, a
residual block with a projection shortcut, a depthwise-separable block with ReLU6, the
legacy PyTorch flatten subgraph (Shape->Gather->Unsqueeze->Concat->Reshape), MatMul+Add
as a linear layer, opset-11 Softmax on 4-D (coerced to 2-D), a 1-D conv, SAME_UPPER
auto-padding and ceil-mode average pooling. Weights are seeded, so re-running the script
reproduces the files byte for byte. Run: python3 testsuite/scripts/make_filetests.py
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "filetests", "import")


class Builder:
    def __init__(self, name, seed):
        self.name, self.rng = name, np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def weight(self, name, shape, scale=0.3):
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op, inputs, attrs=None, name=None):
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name or f"/{op}_{self.count}", **(attrs or {})))
        return out

    def conv(self, x, cin, cout, k=3, stride=1, pad=1, group=1, bias=True):
        i = self.count
        w = self.weight(f"conv{i}.weight", (cout, cin // group, k, k))
        ins = [x, w] + ([self.weight(f"conv{i}.bias", (cout,), 0.1)] if bias else [])
        return self.node("Conv", ins, dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group))

    def bn(self, x, c):
        i = self.count
        p = [self.const(f"bn{i}.weight", (1 + 0.2 * self.rng.standard_normal(c)).astype(np.float32)),
             self.const(f"bn{i}.bias", (0.1 * self.rng.standard_normal(c)).astype(np.float32)),
             self.const(f"bn{i}.running_mean", (0.1 * self.rng.standard_normal(c)).astype(np.float32)),
             self.const(f"bn{i}.running_var", (0.5 + self.rng.random(c)).astype(np.float32))]
        return self.node("BatchNormalization", [x] + p, dict(epsilon=1e-5))

    def save(self, x_shape, out, out_shape, opset=13):
        g = helper.make_graph(
            self.nodes, self.name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="fqc-filetests")
        m.ir_version = 8
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(OUT, self.name + ".onnx"))


def conv_bn_relu():
    b = Builder("conv_bn_relu", 1)
    t = b.node("Relu", [b.bn(b.conv("x", 3, 8), 8)])
    t = b.node("Relu", [b.bn(b.conv(t, 8, 8), 8)])
    t = b.node("MaxPool", [t], dict(kernel_shape=[2, 2], strides=[2, 2]))
    t = b.node("Flatten", [t], dict(axis=1))
    t = b.node("Gemm", [t, b.weight("fc.weight", (10, 8 * 4 * 4), 0.1), b.weight("fc.bias", (10,), 0.1)], dict(transB=1))
    b.save(["N", 3, 8, 8], t, ["N", 10])


def residual_projection():
    b = Builder("residual_projection", 2)
    stem = b.node("Relu", [b.bn(b.conv("x", 3, 8), 8)])
    t = b.node("Relu", [b.bn(b.conv(stem, 8, 16, stride=2, bias=False), 16)])
    t = b.bn(b.conv(t, 16, 16, bias=False), 16)
    short = b.bn(b.conv(stem, 8, 16, k=1, stride=2, pad=0, bias=False), 16)
    t = b.node("Relu", [b.node("Add", [t, short])])
    t = b.node("Flatten", [b.node("GlobalAveragePool", [t])], dict(axis=1))
    t = b.node("Gemm", [t, b.weight("fc.weight", (10, 16), 0.2), b.weight("fc.bias", (10,), 0.1)], dict(transB=1))
    b.save(["N", 3, 16, 16], t, ["N", 10])


def depthwise_block():
    b = Builder("depthwise_block", 3)
    t = b.node("Clip", [b.bn(b.conv("x", 8, 8, group=8, bias=False), 8),
                        b.const("relu6.min", np.float32(0)), b.const("relu6.max", np.float32(6))])
    t = b.node("Relu", [b.bn(b.conv(t, 8, 16, k=1, pad=0, bias=False), 16)])
    t = b.node("AveragePool", [t], dict(kernel_shape=[2, 2], strides=[2, 2]))
    t = b.conv(t, 16, 10, k=1, pad=0)
    b.save(["N", 8, 12, 12], t, ["N", 10, 6, 6])


def legacy_flatten():
    b = Builder("legacy_flatten", 4)
    t = b.node("Relu", [b.conv("x", 1, 4)])
    s = b.node("Shape", [t])
    n = b.node("Gather", [s, b.const("zero", np.int64(0))], dict(axis=0))
    n = b.node("Unsqueeze", [n, b.const("axes", np.array([0], np.int64))])
    shape = b.node("Concat", [n, b.const("minus_one", np.array([-1], np.int64))], dict(axis=0))
    t = b.node("Reshape", [t, shape])
    t = b.node("Gemm", [t, b.weight("fc.weight", (5, 4 * 6 * 6), 0.1), b.weight("fc.bias", (5,), 0.1)], dict(transB=1))
    b.save(["N", 1, 6, 6], t, ["N", 5])


def matmul_add():
    b = Builder("matmul_add", 5)
    t = b.node("Flatten", [b.node("Relu", ["x"])], dict(axis=1))
    t = b.node("MatMul", [t, b.weight("linear.weight_t", (2 * 3 * 3, 7), 0.2)])
    t = b.node("Add", [t, b.weight("linear.bias", (7,), 0.1)])
    b.save(["N", 2, 3, 3], t, ["N", 7])


def softmax_opset11():
    b = Builder("softmax_opset11", 6)
    t = b.node("Softmax", [b.conv("x", 2, 3)], dict(axis=1))
    b.save(["N", 2, 4, 4], t, ["N", 3, 4, 4], opset=11)


def conv1d():
    b = Builder("conv1d", 7)
    w = b.weight("conv.weight", (4, 2, 3))
    t = b.node("Conv", ["x", w], dict(kernel_shape=[3], pads=[1, 1], strides=[2]))
    t = b.node("MaxPool", [b.node("Relu", [t])], dict(kernel_shape=[2], strides=[2]))
    b.save(["N", 2, 16], t, ["N", 4, 4])


def autopad_same():
    b = Builder("autopad_same", 8)
    w = b.weight("conv.weight", (4, 3, 3, 3))
    t = b.node("Conv", ["x", w], dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"))
    t = b.node("MaxPool", [t], dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"))
    b.save(["N", 3, 9, 10], t, ["N", 4, 3, 3])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for f in [conv_bn_relu, residual_projection, depthwise_block, legacy_flatten, matmul_add, softmax_opset11,
              conv1d, autopad_same]:
        f()
        print("wrote", f.__name__)

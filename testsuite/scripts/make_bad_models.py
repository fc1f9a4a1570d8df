"""Builds the hostile / unsupported ONNX files under testsuite/filetests/bad/ (committed).

Each must make `fqc inspect` print one clear error line naming the problem (and the node
where there is one) and exit non-zero, without panicking or allocating much. Truncated
files and random bytes are made by the Rust tests themselves.
Run: python3 testsuite/scripts/make_bad_models.py
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "filetests", "bad")


def model(nodes, inits=(), x_shape=("N", 1, 4, 4), out="y", out_shape=None, opset=13):
    g = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def save(m, name):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(m.SerializeToString())


def main():
    os.makedirs(OUT, exist_ok=True)
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    # An op fqc does not know.
    save(model([helper.make_node("Relu", ["x"], ["r"], name="ok"),
                helper.make_node("Hardmax", ["r"], ["y"], name="/act/Hardmax")]), "unknown_op.onnx")
    # A supported op with an attribute fqc does not accept.
    save(model([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv", kernel_shape=[3, 3],
                                 auto_pad="SOMETIMES")], [w]), "unsupported_attribute.onnx")
    # An initializer claiming 10^12 elements (no payload follows).
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1000000, 1000000])
    save(model([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], [huge]), "huge_shape.onnx")
    # Negative dimensions.
    neg = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, -1, 3, 3])
    save(model([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], [neg]), "negative_dims.onnx")
    # ConstantOfShape asking for 10^12 elements.
    shape = numpy_helper.from_array(np.array([1000000, 1000000], np.int64), "shape")
    save(model([helper.make_node("ConstantOfShape", ["shape"], ["c"], name="/big/ConstantOfShape"),
                helper.make_node("Add", ["x", "c"], ["y"], name="/add/Add")], [shape]), "huge_constant_of_shape.onnx")
    # External data leaving the model's folder, relative and absolute.
    for name, location in [("external_escape.onnx", "../../secret.bin"), ("external_absolute.onnx", "/etc/passwd")]:
        ext = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3],
                          data_location=TensorProto.EXTERNAL)
        for k, v in [("location", location), ("offset", "0"), ("length", "72")]:
            e = ext.external_data.add()
            e.key, e.value = k, v
        save(model([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], [ext]), name)
    # raw_data shorter than the dims say.
    short = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3], raw_data=b"\0" * 40)
    save(model([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], [short]), "short_raw_data.onnx")
    # An input with a symbolic spatial dimension.
    save(model([helper.make_node("Relu", ["x"], ["y"], name="/relu/Relu")], x_shape=("N", 1, "H", 4)),
         "symbolic_height.onnx")
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()

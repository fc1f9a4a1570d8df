#!/usr/bin/env python3
"""Generate ONNX's own backend node tests for the ops fqc's importer accepts.

The test cases are produced offline by the `onnx` wheel itself
(`onnx.backend.test.case.node.collect_testcases()`), filtered so that *every*
top-level graph node's op_type is one fqc's importer lowers (`fqc ops`), and written with the
library's own writer (`onnx.backend.test.cmd_tools.generate_data`), i.e. in
exactly ONNX's layout:

    testsuite/generated/node/<test_name>/model.onnx
    testsuite/generated/node/<test_name>/test_data_set_0/input_<i>.pb
    testsuite/generated/node/<test_name>/test_data_set_0/output_<i>.pb

plus `testsuite/generated/node/manifest.json` (a list of
{name, ops, primary_op, opset, n_inputs, n_outputs, input_dtypes, output_dtypes,
tensor_only}).  dtypes are ONNX TensorProto.DataType names ("FLOAT",
"INT64", ...); non-tensor values are written as "sequence(FLOAT)",
"optional(...)" and such tests have tensor_only=false.

The output directory is wiped and rewritten on every run (idempotent).
Usage: python3 testsuite/scripts/gen_node_tests.py [--out DIR] [--report]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import types
import warnings
from collections import Counter, defaultdict

import numpy as np
import onnx
from onnx import TensorProto

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def supported_ops() -> frozenset:
    """The ONNX op types fqc's importer lowers, asked of fqc itself (`fqc ops`), so the
    list cannot drift from the importer. Uses $FQC_BIN if set, else `cargo run`."""
    fqc = os.environ.get("FQC_BIN")
    cmd = [fqc, "ops"] if fqc else ["cargo", "run", "--quiet", "--locked", "--bin", "fqc", "--", "ops"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    ops = frozenset(out.split())
    if not ops:
        raise SystemExit("`fqc ops` listed no ops")
    return ops
DEFAULT_OUT = os.path.join(ROOT, "testsuite", "generated")


def type_name(tp: onnx.TypeProto) -> str:
    """Human/machine readable name of a value's type."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return TensorProto.DataType.Name(tp.tensor_type.elem_type)
    if which == "sparse_tensor_type":
        return "sparse(" + TensorProto.DataType.Name(tp.sparse_tensor_type.elem_type) + ")"
    if which == "sequence_type":
        return "sequence(" + type_name(tp.sequence_type.elem_type) + ")"
    if which == "optional_type":
        return "optional(" + type_name(tp.optional_type.elem_type) + ")"
    if which == "map_type":
        return "map"
    return "unknown"


def ai_onnx_opset(model: onnx.ModelProto) -> int | None:
    for oi in model.opset_import:
        if oi.domain in ("", "ai.onnx"):
            return oi.version
    return None


def collect() -> list:
    """All node test cases from the onnx wheel (≈12 s; needs no network)."""
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return node_cases.collect_testcases()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help="generated root (node tests go to OUT/node)")
    ap.add_argument("--report", action="store_true",
                    help="also list tests dropped because they mix in other ops")
    args = ap.parse_args()

    t0 = time.time()
    cases = collect()
    t_collect = time.time() - t0

    # "primary" op of a test = op of its single-node base test (X for X_expanded*)
    primary = {c.name: c.model.graph.node[0].op_type for c in cases
               if c.kind == "node" and c.model is not None and "_expanded" not in c.name
               and len(c.model.graph.node) == 1}
    supported = supported_ops()
    kept, dropped = [], []  # dropped: touches a supported op but also others
    for case in cases:
        if case.kind != "node" or case.model is None:
            continue
        ops = {n.op_type for n in case.model.graph.node}
        domains = {n.domain for n in case.model.graph.node}
        if ops and ops <= supported and domains <= {"", "ai.onnx"}:
            kept.append(case)
        elif ops & supported:
            base = primary.get(case.name.split("_expanded")[0], "?")
            dropped.append((case.name, base, sorted(ops - supported)))
    kept.sort(key=lambda c: c.name)

    node_dir = os.path.join(args.out, "node")
    if os.path.exists(node_dir):
        shutil.rmtree(node_dir)
    os.makedirs(node_dir)

    # Reuse ONNX's own writer: generate_data() iterates
    # model_test.collect_testcases(); point it at our filtered list only.
    from onnx.backend.test import cmd_tools

    orig = cmd_tools.model_test
    cmd_tools.model_test = types.SimpleNamespace(collect_testcases=lambda: kept)
    try:
        cmd_tools.generate_data(argparse.Namespace(output=args.out))
    finally:
        cmd_tools.model_test = orig

    manifest, per_op = [], Counter()
    for case in kept:
        g = case.model.graph
        ops = sorted({n.op_type for n in g.node})
        per_op.update(ops)
        in_t = [type_name(v.type) for v in g.input]
        out_t = [type_name(v.type) for v in g.output]
        manifest.append({
            "name": case.name,
            "ops": ops,
            "primary_op": primary.get(case.name.split("_expanded")[0], "?"),
            "opset": ai_onnx_opset(case.model),
            "n_inputs": len(g.input),
            "n_outputs": len(g.output),
            "input_dtypes": in_t,
            "output_dtypes": out_t,
            "tensor_only": all(v.type.HasField("tensor_type")
                               for v in list(g.input) + list(g.output)),
            "n_data_sets": len(case.data_sets),
        })
    with open(os.path.join(node_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")

    print(f"collected {len(cases)} node cases in {t_collect:.1f}s; "
          f"wrote {len(kept)} to {node_dir} in {time.time() - t0:.1f}s total")
    print(f"non-tensor (sequence/optional) tests kept but flagged tensor_only=false: "
          f"{sum(not m['tensor_only'] for m in manifest)}")
    print("tests per op (a multi-op test counts for each of its ops):")
    for op in sorted(supported):
        print(f"  {op:20s} {per_op.get(op, 0)}")
    own = [d for d in dropped if d[1] in supported]
    print(f"dropped {len(dropped)} tests that use a supported op plus other ops; "
          f"{len(own)} of them are tests *of* a supported op"
          + ("" if args.report else " (--report lists them)"))
    if args.report:
        print("tests of supported ops dropped (test: extra ops):")
        for name, base, extra in sorted(own):
            print(f"  {name} [{base}]: {','.join(extra)}")
        print("expanded bodies of unsupported ops that use supported ops, by primary op:")
        by_base = defaultdict(set)
        for name, base, extra in dropped:
            if base not in supported:
                by_base[base].update(extra)
        for base, extra in sorted(by_base.items()):
            n = sum(1 for d in dropped if d[1] == base)
            print(f"  {base} ({n} tests): extra {','.join(sorted(extra))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""ONNX's side of tests/interop/onnx_test.cpp. Each command prints one JSON object.

    onnx_check.py check MODELS.json   MODELS: [{"onnx", "x", "raw"}]: each file through
                                      onnx.checker.check_model (full_check, which also infers every
                                      shape), and what it holds: IR version, opsets, the node
                                      operators in order, the input and output shapes (the batch
                                      dimension's name), metadata; x (.npy) is written to raw as
                                      float32 rows for onnx_run.js
    onnx_check.py compare CASES.json  CASES: [{"ours" (.npy), "ort" (raw float32)}]: the largest
                                      |difference| and the shapes
"""

import json
import sys

import numpy as np


def dims(value_info):
    shape = value_info.type.tensor_type.shape
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in shape.dim]


def cmd_check(path):
    import onnx

    with open(path) as f:
        models = json.load(f)
    results = []
    for m in models:
        model = onnx.load(m["onnx"])
        error = ""
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # the checker's own exception types vary between versions
            error = f"{type(e).__name__}: {e}"
        x = np.load(m["x"])
        x = x.reshape(x.shape[0], -1).astype("<f4")
        x.tofile(m["raw"])
        g = model.graph
        results.append({
            "checker_error": error,
            "ir_version": model.ir_version,
            "opsets": {o.domain: o.version for o in model.opset_import},
            "producer": model.producer_name,
            "ops": [n.op_type for n in g.node],
            "inputs": {i.name: dims(i) for i in g.input},
            "outputs": {o.name: dims(o) for o in g.output},
            "elem_types": [i.type.tensor_type.elem_type for i in list(g.input) + list(g.output)],
            "initializers": sorted(t.name for t in g.initializer),
            "metadata": {p.key: p.value for p in model.metadata_props},
            "rows": int(x.shape[0]),
            "width": int(x.shape[1]),
        })
    print(json.dumps({"models": results}))


def cmd_compare(path):
    with open(path) as f:
        cases = json.load(f)
    results = []
    for c in cases:
        ours = np.load(c["ours"]).astype(np.float64)
        ort = np.fromfile(c["ort"], dtype="<f4").astype(np.float64)
        same = ort.size == ours.size
        ort = ort.reshape(ours.shape) if same else ort
        results.append({
            "same_size": same,
            "rows": int(ours.shape[0]),
            "max_abs": float(np.abs(ours - ort).max()) if same else float("inf"),
        })
    print(json.dumps({"cases": results}))


if __name__ == "__main__":
    {"check": cmd_check, "compare": cmd_compare}[sys.argv[1]](sys.argv[2])

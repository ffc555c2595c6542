#!/usr/bin/env python3
"""Checks a model written by `cnnc export --dynamic-size` against fixed-size exports.

    check_dynamic.py DYNAMIC.onnx FIXED.onnx [FIXED.onnx ...]

1. onnx.checker.check_model(full_check=True) on DYNAMIC (strict shape inference included).
2. DYNAMIC's input is [N, C, height, width], symbolic height and width.
3. Each FIXED model is the same network with the same weights, exported at another input
   size; on a random batch of two at that size, ONNX Runtime (CPU) must give the same
   output from DYNAMIC as from FIXED (shape exactly, values within float32 noise).

Exits 0 when everything agrees, 1 with a message on any disagreement, 2 when a Python
package is missing.
"""

import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    print(f"check_dynamic.py: {e}; run: pip install onnx onnxruntime numpy", file=sys.stderr)
    sys.exit(2)


def fail(msg):
    print(f"check_dynamic.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def dims(value_info):
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        kind = d.WhichOneof("value")
        out.append(d.dim_value if kind == "dim_value" else d.dim_param)
    return out


def session(path):
    options = ort.SessionOptions()
    # The fixed and the variable graph are compared as written, not as ORT rewrites them.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main():
    if len(sys.argv) < 3:
        fail("usage: check_dynamic.py DYNAMIC.onnx FIXED.onnx [FIXED.onnx ...]")
    dynamic_path, fixed_paths = sys.argv[1], sys.argv[2:]
    model = onnx.load(dynamic_path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 - the checker's own message is the report
        fail(f"{dynamic_path}: check_model: {e}")
    input_dims = dims(model.graph.input[0])
    if len(input_dims) != 4 or input_dims[0] != "N" or input_dims[2:] != ["height", "width"]:
        fail(f"{dynamic_path}: input is {input_dims}, not [N, C, height, width]")
    dynamic = session(dynamic_path)
    rng = np.random.default_rng(0)
    for path in fixed_paths:
        fixed = session(path)
        shape = [2] + [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim[1:]]
        x = rng.standard_normal(shape).astype(np.float32)
        (want,) = fixed.run(None, {"input": x})
        (got,) = dynamic.run(None, {"input": x})
        if got.shape != want.shape:
            fail(f"at input {shape}: output {list(got.shape)}, the fixed export's {list(want.shape)}")
        err = float(np.max(np.abs(got - want))) if want.size else 0.0
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
        if not err <= 1e-5 * scale:
            fail(f"at input {shape}: outputs differ by {err:.3g} (scale {scale:.3g})")
        print(f"input {shape}: output {list(got.shape)}, max difference {err:.3g}")


if __name__ == "__main__":
    main()

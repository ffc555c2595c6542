#!/usr/bin/env python3
"""Checks a model written by `cnnc export`.

    check_onnx.py MODEL.onnx [--reference SPEC.json] [--batch N] [--seed S]

1. onnx.checker.check_model(full_check=True) on the file (external data included).
2. ONNX shape inference (strict mode) on a copy stripped of cnnc's value_info and output
   shape, then every value_info cnnc wrote, and the graph output, must equal the inferred
   shape exactly (the batch dimension is the symbol N; after a Resize, whose inference loses
   that name, the batch may be unknown instead). Every node output other than the graph's
   outputs (`output`, and a named output's) must have a value_info from cnnc.
3. ONNX Runtime (CPU) runs the model on a random batch; the output shape must match.
4. With --reference, SPEC.json describes a single-layer model (op and attributes, PyTorch
   semantics); a NumPy reference written from PyTorch's documented behaviour is compared
   with ONNX Runtime's result.

Exits 0 when everything agrees, 1 with a message on any disagreement, 2 when a Python
package is missing.
"""

import argparse
import json
import math
import sys

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    print(f"check_onnx.py: {e}; run: pip install onnx onnxruntime numpy", file=sys.stderr)
    sys.exit(2)


def fail(msg):
    print(f"check_onnx.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def dims_of(value_info):
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    out = []
    for d in t.shape.dim:
        kind = d.WhichOneof("value")
        out.append(d.dim_value if kind == "dim_value" else d.dim_param if kind == "dim_param" else "?")
    return out


def check_shapes(path):
    model = onnx.load(path, load_external_data=False)
    written = {vi.name: dims_of(vi) for vi in model.graph.value_info}
    for out_vi in model.graph.output:
        written[out_vi.name] = dims_of(out_vi)

    produced = [o for n in model.graph.node for o in n.output]
    missing = [o for o in produced if o not in written]
    if missing:
        fail(f"no value_info from cnnc for: {', '.join(missing)}")

    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    for o in stripped.graph.output:
        o.type.tensor_type.ClearField("shape")
    try:
        inferred_model = onnx.shape_inference.infer_shapes(stripped, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        fail(f"ONNX shape inference failed: {e}")
    inferred = {vi.name: dims_of(vi) for vi in inferred_model.graph.value_info}
    for o in inferred_model.graph.output:
        inferred[o.name] = dims_of(o)

    # ONNX's inference of Resize (bilinear upsample) computes every dimension from its
    # scales and has no name for the batch's: from there on it may only say it is unknown
    # (cnnc's value_info keeps the name); every other dimension must still agree.
    after_resize = set()
    for n in model.graph.node:
        if n.op_type == "Resize" or any(i in after_resize for i in n.input):
            after_resize.update(n.output)

    def batch_unnamed(name, got, dims):
        return (name in after_resize and len(got) == len(dims) and dims[0] == "N"
                and isinstance(got[0], str) and got[0].startswith("unk__") and got[1:] == dims[1:])

    problems = []
    for name, dims in written.items():
        got = inferred.get(name)
        if got is None:
            problems.append(f"{name}: cnnc says {dims}, ONNX inferred no shape")
        elif got != dims and not batch_unnamed(name, got, dims):
            problems.append(f"{name}: cnnc says {dims}, ONNX infers {got}")
    if problems:
        fail("shape disagreements:\n  " + "\n  ".join(problems))
    return model, len(written)


def check_provenance(model):
    """What cnnc promises beyond validity: producer, source metadata, and a `path:line:col`
    doc string on every node, read back by the reference protobuf implementation."""
    if model.producer_name != "cnnc":
        fail(f"producer_name is {model.producer_name!r}")
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("cnnc_version", "source_file", "source_sha256"):
        if not meta.get(key):
            fail(f"metadata_props lacks {key}")
    if len(meta["source_sha256"]) != 64:
        fail(f"source_sha256 is {meta['source_sha256']!r}")
    for n in model.graph.node:
        parts = n.doc_string.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            fail(f"node {n.name} has doc_string {n.doc_string!r}, not path:line:col")
    if [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim[:1]] != ["N"]:
        fail("the input's batch dimension is not the symbol N")


# ---- NumPy references, from PyTorch's documented semantics ----

def pool_out(n, k, s, pb, pe, ceil):
    """PyTorch's pooling output size; in ceil mode the last window must start inside the
    input or the begin padding (pooling_output_shape in ATen)."""
    span = n + pb + pe - k
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + pb:
        o -= 1
    return o


def ref_pool(x, spec, kind):
    kh, kw = spec["kernel"]
    sh, sw = spec["stride"]
    t, l, b, r = spec["pads"]
    ceil = spec["ceil"]
    n, c, h, w = x.shape
    oh = pool_out(h, kh, sh, t, b, ceil)
    ow = pool_out(w, kw, sw, l, r, ceil)
    y = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * sh - t, j * sw - l
            # AvgPool2d, count_include_pad=True: the divisor is the window clipped to the
            # padded input (ceil-mode overhang excluded), padding included; with False, the
            # window clipped to the input.
            he, we = min(hs + kh, h + b), min(ws + kw, w + r)
            pool_size = (he - hs) * (we - ws)
            hs0, ws0, he0, we0 = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            if not spec.get("count_include_pad", True):
                pool_size = (he0 - hs0) * (we0 - ws0)
            win = x[:, :, hs0:he0, ws0:we0].astype(np.float64)
            if kind == "maxpool":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                y[:, :, i, j] = win.sum(axis=(2, 3)) / pool_size
    return y


def ref_adaptive(x, spec, reduce=np.mean):
    oh, ow = spec["output"]
    n, c, h, w = x.shape
    y = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(oh):
        hs, he = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            ws, we = (j * w) // ow, -(-((j + 1) * w) // ow)
            y[:, :, i, j] = reduce(x[:, :, hs:he, ws:we].astype(np.float64), axis=(2, 3))
    return y


def ref_crop(x, spec):
    th, tw = spec["size"]
    h, w = x.shape[2], x.shape[3]
    oh, ow = (h - th) // 2, (w - tw) // 2
    return x[:, :, oh:oh + th, ow:ow + tw].astype(np.float64)


def ref_pad(x, spec):
    # numpy's modes are PyTorch's: constant (ZeroPad2d), reflect (ReflectionPad2d: the edge
    # not repeated), edge (ReplicationPad2d); written independently of ONNX's Pad.
    t, b, l, r = spec["pads"]
    mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}[spec["mode"]]
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (l, r)), mode=mode)


def ref_upsample(x, spec):
    # PyTorch's upsample_nearest2d: output pixel o of an axis of n going to m reads pixel o
    # (m = n), o // 2 (m = 2n), else floor(o * scale) in float32, scale = 1/s for a scale
    # factor s (not always a plain repetition: 41 is one) and n/m for a size.
    h, w = x.shape[2:]
    if "size" in spec:
        (th, tw) = spec["size"]
        scales = (np.float32(h) / np.float32(th), np.float32(w) / np.float32(tw))
    else:
        sh, sw = spec["scale"]
        (th, tw) = (h * sh, w * sw)
        scales = (np.float32(1.0 / sh), np.float32(1.0 / sw))

    def source(size, out, scale):
        if out == size:
            return list(range(out))
        if out == 2 * size:
            return [o // 2 for o in range(out)]
        return [min(int(np.floor(np.float32(o) * scale)), size - 1) for o in range(out)]
    rows, cols = source(h, th, scales[0]), source(w, tw, scales[1])
    return x[:, :, rows, :][:, :, :, cols].astype(np.float64)


def ref_upsample_bilinear(x, spec):
    # PyTorch's upsample_bilinear2d, one output pixel at a time: the source position
    # (o + 1/2)/s - 1/2 (at least 0), or o (n - 1)/(n s - 1) with align_corners, read from
    # its two neighbours on each axis.
    # To a size: the source position (o + 1/2) n / m - 1/2, as s = m / n.
    n, c, h, w = x.shape
    th, tw = spec["size"] if "size" in spec else (h * spec["scale"][0], w * spec["scale"][1])
    align = spec["align_corners"]

    def source(o, size, out):
        if align:
            pos = o * (size - 1) / (out - 1) if out > 1 else 0.0
        else:
            pos = max((o + 0.5) * size / out - 0.5, 0.0)
        i0 = min(int(math.floor(pos)), size - 1)
        frac = min(max(pos - i0, 0.0), 1.0)
        return i0, min(i0 + 1, size - 1), frac

    x = x.astype(np.float64)
    y = np.zeros((n, c, th, tw))
    for oy in range(th):
        y0, y1, fy = source(oy, h, th)
        for ox in range(tw):
            x0, x1, fx = source(ox, w, tw)
            y[:, :, oy, ox] = ((1 - fy) * ((1 - fx) * x[:, :, y0, x0] + fx * x[:, :, y0, x1])
                               + fy * ((1 - fx) * x[:, :, y1, x0] + fx * x[:, :, y1, x1]))
    return y


def ref_silu(x, spec):
    x = x.astype(np.float64)
    return x / (1.0 + np.exp(-x))


def ref_mish(x, spec):
    x = x.astype(np.float64)
    return x * np.tanh(np.log1p(np.exp(x)))


def ref_prelu(x, spec):
    a = spec["_init"][spec["weight"]].astype(np.float64)
    a = a.reshape((1, -1) + (1,) * (x.ndim - 2)) if a.size > 1 else a.reshape(())
    x = x.astype(np.float64)
    return np.where(x > 0, x, a * x)


def ref_gelu(x, spec):
    # PyTorch's exact GELU: x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2.
    x = x.astype(np.float64)
    erf = np.vectorize(math.erf)
    return x * 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def ref_relu6(x, spec):
    return np.minimum(np.maximum(x.astype(np.float64), 0.0), 6.0)


def ref_hardsigmoid(x, spec):
    # PyTorch's: relu6(x + 3) / 6.
    return ref_relu6(x.astype(np.float64) + 3.0, spec) / 6.0


def ref_hardswish(x, spec):
    return x.astype(np.float64) * ref_hardsigmoid(x, spec)


def ref_convT(x, spec):
    # PyTorch's ConvTranspose2d by its definition: every input value scatters its kernel,
    # dilated, at stride steps; the full result is cut by the padding (begin, end) and grown
    # by output_pad (zeros that no input reaches), then the bias is added everywhere.
    w = spec["_init"][spec["weight"]].astype(np.float64)   # (C_in, C_out / g, kh, kw)
    b = spec["_init"].get(spec.get("bias") or "", None)
    (sh, sw), (dh, dw), g = spec["stride"], spec["dilation"], spec["groups"]
    pt, pb, pl, pr = spec["pads"]                              # top, bottom, left, right
    oph, opw = spec["output_pad"]
    n, cin, h, wd = x.shape
    _, cg, kh, kw = w.shape
    fh, fw = (h - 1) * sh + dh * (kh - 1) + 1, (wd - 1) * sw + dw * (kw - 1) + 1
    full = np.zeros((n, cg * g, fh + oph, fw + opw))
    per = cin // g
    for ci in range(cin):
        grp = ci // per
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nhw,o->nohw", x[:, ci].astype(np.float64), w[ci, :, i, j])
                full[:, grp * cg:(grp + 1) * cg,
                     i * dh:i * dh + (h - 1) * sh + 1:sh,
                     j * dw:j * dw + (wd - 1) * sw + 1:sw] += contrib
    out = full[:, :, pt:fh + oph - pb, pl:fw + opw - pr]
    if b is not None:
        out = out + b.astype(np.float64)[None, :, None, None]
    return out


def ref_groupnorm(x, spec):
    # PyTorch's GroupNorm: each sample's channels split into groups in order, each group's
    # values (all its channels' pixels) centred and divided by sqrt(biased variance + eps),
    # then a scale and shift per channel.
    n = x.shape[0]
    g = spec["groups"]
    xg = x.astype(np.float64).reshape(n, g, -1)
    mean = xg.mean(axis=2, keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=2, keepdims=True)
    y = ((xg - mean) / np.sqrt(var + spec["eps"])).reshape(x.shape)
    return scale_and_shift(y, spec)


def scale_and_shift(y, spec):
    # A normalization's learned scale and shift per channel, when it has them.
    per_channel = (1, y.shape[1]) + (1,) * (y.ndim - 2)
    if spec.get("weight"):
        y = y * spec["_init"][spec["weight"]].astype(np.float64).reshape(per_channel)
        y = y + spec["_init"][spec["bias"]].astype(np.float64).reshape(per_channel)
    return y


def ref_layernorm(x, spec):
    # ConvNeXt's LayerNorm2d: each sample's values at one pixel (its channels) centred and
    # divided by sqrt(biased variance + eps), then a scale and shift per channel.
    x = x.astype(np.float64)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return scale_and_shift((x - mean) / np.sqrt(var + spec["eps"]), spec)


def ref_layer_scale(x, spec):
    # x times a factor per channel, stored [C, 1, 1] as torchvision's ConvNeXt stores it.
    w = spec["_init"][spec["weight"]].astype(np.float64)
    assert w.shape == (x.shape[1], 1, 1), w.shape
    return x.astype(np.float64) * w[None]


def ref_pixel_shuffle(x, spec):
    # PyTorch's pixel_shuffle by its definition, one value at a time: channel c*r*r + i*r + j
    # at (h, w) is channel c at (h*r + i, w*r + j); unshuffle the other way round.
    r = spec["factor"]
    n, c, h, w = x.shape
    if spec["unshuffle"]:
        y = np.zeros((n, c * r * r, h // r, w // r))
        for ci in range(c):
            for i in range(r):
                for j in range(r):
                    y[:, ci * r * r + i * r + j] = x[:, ci, i::r, j::r]
        return y
    y = np.zeros((n, c // (r * r), h * r, w * r))
    for co in range(c // (r * r)):
        for i in range(r):
            for j in range(r):
                for hh in range(h):
                    for ww in range(w):
                        y[:, co, hh * r + i, ww * r + j] = x[:, co * r * r + i * r + j, hh, ww]
    return y


def ref_scale(x, spec):
    return x.astype(np.float64) * spec["factor"]


def ref_normalize(x, spec):
    # torchvision's Normalize in float32: (x - mean) / std, per channel.
    per = lambda v: np.array(v, dtype=np.float32).reshape(-1, *([1] * (x.ndim - 2)))
    return (x - per(spec["mean"])) / per(spec["std"])


REFERENCES = {
    "normalize": ref_normalize,
    "scale": ref_scale,
    "pixel_shuffle": ref_pixel_shuffle,
    "groupnorm": ref_groupnorm,
    "layernorm": ref_layernorm,
    "layer_scale": ref_layer_scale,
    "convT": ref_convT,
    "silu": ref_silu,
    "mish": ref_mish,
    "prelu": ref_prelu,
    "gelu": ref_gelu,
    "relu6": ref_relu6,
    "hardsigmoid": ref_hardsigmoid,
    "hardswish": ref_hardswish,
    "maxpool": lambda x, s: ref_pool(x, s, "maxpool"),
    "avgpool": lambda x, s: ref_pool(x, s, "avgpool"),
    "adaptive_avgpool": ref_adaptive,
    "adaptive_maxpool": lambda x, s: ref_adaptive(x, s, np.max),
    "global_maxpool": lambda x, s: ref_adaptive(x, dict(s, output=[1, 1]), np.max),
    "crop": ref_crop,
    "pad": ref_pad,
    "upsample": ref_upsample,
    "upsample_bilinear": ref_upsample_bilinear,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--reference")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    try:
        onnx.checker.check_model(args.model, full_check=True)
    except Exception as e:
        fail(f"onnx.checker: {e}")

    model, n_shapes = check_shapes(args.model)
    check_provenance(model)

    inp = model.graph.input[0]
    in_dims = dims_of(inp)
    shape = [args.batch] + [int(d) for d in in_dims[1:]]
    spec = None
    if args.reference:
        with open(args.reference) as f:
            spec = json.load(f)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(shape).astype(np.float32)
    if spec is not None:
        x = (x * spec.get("input_scale", 1.0)).astype(np.float32)
    try:
        sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
        ys = sess.run([o.name for o in model.graph.output], {inp.name: x})
    except Exception as e:
        fail(f"onnxruntime: {e}")
    y = ys[0]
    for out_vi, got in zip(model.graph.output, ys):
        want = [args.batch] + [int(d) for d in dims_of(out_vi)[1:]]
        if list(got.shape) != want:
            fail(f"onnxruntime output `{out_vi.name}` shape {list(got.shape)}, cnnc says {want}")
        if not np.all(np.isfinite(got)):
            fail(f"onnxruntime output `{out_vi.name}` has non-finite values")

    if spec is not None:
        spec["_init"] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        ref = REFERENCES[spec["op"]](x, spec)
        if ref.shape != y.shape:
            fail(f"reference shape {list(ref.shape)} (PyTorch's formula), onnxruntime {list(y.shape)}")
        err = float(np.max(np.abs(ref - y))) if y.size else 0.0
        if not err <= 1e-5 * max(1.0, float(np.max(np.abs(ref)))):
            idx = np.unravel_index(np.argmax(np.abs(ref - y)), y.shape)
            fail(f"{spec['op']} differs from the NumPy reference: max error {err:.3g} at {idx} "
                 f"(reference {ref[idx]:.6g}, onnxruntime {y[idx]:.6g})")
        print(f"check_onnx.py: ok: {args.model}: {n_shapes} shapes, {spec['op']} matches the reference (max error {err:.2g})")
    else:
        print(f"check_onnx.py: ok: {args.model}: {n_shapes} shapes agree, onnxruntime output {list(y.shape)}")


if __name__ == "__main__":
    main()

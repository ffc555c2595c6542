#!/usr/bin/env python3
"""Checks a training graph written by `cnnc export --grad` or `cnnc export --train`.

    grad_check.py MODEL.onnx [--batch N] [--seed S] [--eps E] [--tol T] [--atol A]
                  [--check-only] [--verbose]

1. onnx.checker.check_model(full_check=True) (strict shape inference included).
2. A gradient graph (outputs `loss`, `grad.<p>`): ONNX Runtime (CPU, float32) runs it with
   the parameters it stores as initializers, then for each parameter p, along u = grad.p
   (scaled), the directional derivative <grad.p, u> must agree with a finite difference of
   the graph's own loss: central differences at 8 halving steps from --eps, their Richardson
   extrapolations and the one-sided differences; the best must be within
   --tol * max(|fd|, |an|) + --atol.
3. A step graph (outputs `loss`, `correct`, `new.<name>`): runs one step from random
   parameters and zero optimizer state; every output must be finite and every `new.<x>` have
   the shape of `<x>`.

Exits 0 when everything agrees, 1 with a message on any disagreement, 2 when a Python
package is missing.
"""

import argparse
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover
    print(f"grad_check.py: {e}; run: pip install onnx onnxruntime numpy", file=sys.stderr)
    sys.exit(2)


def fail(msg):
    print(f"grad_check.py: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def dims(vi, batch):
    out = []
    for d in vi.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.WhichOneof("value") == "dim_value" else batch)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eps", type=float, default=2e-3)
    ap.add_argument("--tol", type=float, default=2e-2)
    ap.add_argument("--atol", type=float, default=3e-4)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--check-only", action="store_true", help="only onnx.checker, no runs")
    args = ap.parse_args()

    try:
        onnx.checker.check_model(args.model, full_check=True)
    except Exception as e:
        fail(f"onnx.checker: {e}")
    if args.check_only:
        print(f"grad_check.py: ok: {args.model}: onnx.checker (full check) passes")
        return
    model = onnx.load(args.model)
    g = model.graph
    outputs = [o.name for o in g.output]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    rng = np.random.default_rng(args.seed)
    inputs = {i.name: i for i in g.input}
    out_k = None
    feed = {}
    x_vi = inputs["input"]
    feed["input"] = rng.standard_normal(dims(x_vi, args.batch)).astype(np.float32)
    # Labels: below the class count, read from the grad of the last layer's shape is not
    # possible in general; the number of classes is the second dim of the logits, which the
    # graph does not declare, so take it from the model's doc: fall back to a probe run.
    lab_dims = dims(inputs["labels"], args.batch)
    so = ort.SessionOptions()
    so.log_severity_level = 3  # parameters are initializers and inputs on purpose
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])

    def classes():
        # The smallest class count is 1: a probe with all-zero labels always works; the
        # loss's log_prob tells K, but it is internal. Use the last Gemm /
        # Conv bias or weight dims instead: the first dim of the last parameter in the graph
        # input order that is a bias, else of the last weight.
        params = [i for i in g.input if i.name not in ("input", "labels") and not i.name.startswith("dropout_mask.")]
        last = params[-1] if params else None
        for i in reversed(params):
            if i.name.endswith(".bias"):
                return dims(i, 1)[0]
        return dims(last, 1)[0] if last is not None else 2

    if "correct" in outputs:
        # Step graph: carried tensors are every input other than input/labels/lr/t.
        k = None
        for i in g.input:
            if i.name in ("input", "labels", "lr", "t"):
                continue
            d = dims(i, args.batch)
            if i.name.endswith("running_var"):
                feed[i.name] = np.ones(d, np.float32)
            elif i.name.endswith(("momentum_buffer", "exp_avg", "exp_avg_sq", "running_mean")):
                feed[i.name] = np.zeros(d, np.float32)
            else:
                feed[i.name] = (0.1 * rng.standard_normal(d)).astype(np.float32)
        k = classes()
        feed["labels"] = rng.integers(0, k, lab_dims).astype(np.int64)
        feed["lr"] = np.array(0.1, np.float32)
        if "t" in inputs:
            feed["t"] = np.array(1.0, np.float32)
        res = dict(zip(outputs, sess.run(outputs, feed)))
        for name, v in res.items():
            if not np.all(np.isfinite(v)):
                fail(f"step output {name} is not finite")
            if name.startswith("new."):
                want = feed[name[4:]].shape
                if v.shape != want:
                    fail(f"{name} has shape {v.shape}, {name[4:]} has {want}")
        print(f"grad_check.py: ok: {args.model}: step graph, loss {float(res['loss']):.4f}, {len(outputs)} outputs")
        return

    params = [o[5:] for o in outputs if o.startswith("grad.")]
    for p in params:
        if p not in inits:
            fail(f"parameter {p} has no initializer")
    k = classes()
    feed["labels"] = rng.integers(0, k, lab_dims).astype(np.int64)
    for i in g.input:
        if i.name.startswith("dropout_mask."):
            feed[i.name] = (rng.random(dims(i, args.batch)) > 0.5).astype(np.float32)
    res = dict(zip(outputs, sess.run(outputs, feed)))
    worst = 0.0
    for p in params:
        grad = res["grad." + p]
        if grad.shape != inits[p].shape:
            fail(f"grad.{p} has shape {grad.shape}, the parameter {inits[p].shape}")
        # Along the gradient itself, scaled to the norm of a random direction: the largest
        # signal; a wrong gradient g' is measured there as <g, g'>/|g'| != |g'|.
        norm = float(np.linalg.norm(grad.astype(np.float64)))
        if norm > 0:
            u = (grad.astype(np.float64) * (np.sqrt(grad.size) / norm)).astype(np.float32)
        else:
            u = rng.standard_normal(grad.shape).astype(np.float32)
        an = float(np.sum(grad.astype(np.float64) * u))

        def loss_at(s, eps):
            f = dict(feed)
            f[p] = (inits[p] + s * eps * u).astype(np.float32)
            return float(sess.run(["loss"], f)[0])

        # Central differences at halving steps, their Richardson extrapolations, and the
        # one-sided differences (exact to O(eps) next to a kink of relu or max pooling).
        l0 = float(res["loss"])
        cands = []
        central = []
        eps = args.eps
        for _ in range(8):
            lp, lm = loss_at(1, eps), loss_at(-1, eps)
            central.append((lp - lm) / (2 * eps))
            cands += [(lp - l0) / eps, (l0 - lm) / eps]
            eps /= 2
        cands += central + [(4 * b - a) / 3 for a, b in zip(central, central[1:])]
        fd = min(cands, key=lambda c: abs(c - an) - args.tol * max(abs(c), abs(an)))
        rel = abs(fd - an) / max(abs(fd), abs(an), 1e-12)
        ok = abs(fd - an) <= args.tol * max(abs(fd), abs(an)) + args.atol
        worst = max(worst, abs(fd - an) / (args.tol * max(abs(fd), abs(an)) + args.atol))
        if args.verbose:
            print(f"  {p}: analytic {an:.6g}, central difference {fd:.6g}, relative error {rel:.3g}")
        if not ok:
            fail(f"grad.{p}: directional derivative {an:.6g}, central difference {fd:.6g} (relative error {rel:.3g})")
    print(f"grad_check.py: ok: {args.model}: {len(params)} gradients agree with central differences (worst error {worst:.2f} of the tolerance)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Differential test of cnnc against PyTorch (by hand: it needs torch, which CI does not install).

Run from the repository root, after `cargo build --release`:

    python3 tests/python/pytorch_difftest.py [N] [SEED0]     # N random networks
    python3 tests/python/pytorch_difftest.py sweep           # every small pooling, convT,
                                                             # adaptive-pooling and pad=same case

with torch, onnx, onnxruntime and numpy importable. CNNC (default target/release/cnnc) and
OUT (default a folder under the system's temporary directory) may be set in the environment.

For each of N random networks (seeds SEED0..SEED0+N-1):
  1. cnnc summary --format json: output shape and parameter count vs the torch module
  2. cnnc export --weights (torch's weights, random BN running stats): onnxruntime vs torch eval
     forward (float64 reference), plus onnx.checker full_check
  3. cnnc export --grad --weights: loss and grad.<param> vs torch autograd (train mode,
     F.cross_entropy) for networks ending in a class-score vector without dropout, and one
     --train SGD step (parameters and running statistics).
Some networks have named outputs (`output auxN { … }`, drawn from a random stream of their
own, so a network without one is what its seed gave before): each is compared with torch's in
step 1 (`named_outputs`) and 2; where all are class scores of the main output's shape, step
3 mostly adds their cross-entropy at --aux-weight 0.3 or 1, and otherwise trains the main
output alone at --aux-weight 0 (their heads then have no gradient, and the SGD step leaves them as they are).
A network of one class, whose cross-entropy is always 0, must be refused by --grad instead;
one without parameters has its loss compared alone.
Torch-rejected layer choices are also written as .cnn files and `cnnc check` must reject them.
A convT output_pad at or above the stride (PyTorch allows it below the dilation), which ONNX
Runtime's ConvTranspose refuses, is lowered as an unpadded ConvTranspose, a Slice, a Pad and
the bias; the sweep covers it. Failures go to $OUT/fail_<seed>.* and a summary is printed at the end.
"""
import json, os, random, struct, subprocess, sys, traceback, collections
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
import onnx, onnxruntime as ort

import tempfile
CNNC = os.environ.get("CNNC", os.path.join(os.getcwd(), "target", "release", "cnnc"))
OUT = os.environ.get("OUT", os.path.join(tempfile.gettempdir(), "cnnc-difftest"))
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(1)
ort_opts = ort.SessionOptions()
ort_opts.intra_op_num_threads = 1
ort_opts.log_severity_level = 3


# ---------------------------------------------------------------- safetensors by hand
def save_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for k, v in tensors.items():
        b = np.ascontiguousarray(v, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- torch building blocks
class Seq(nn.Module):
    def __init__(self, mods):
        super().__init__()
        self.m = nn.ModuleList(mods)

    def forward(self, x):
        for m in self.m:
            x = m(x)
        return x


class Concat(nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.b = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.b], 1)


class Residual(nn.Module):
    def __init__(self, body, sc):
        super().__init__()
        self.body, self.sc = body, sc

    def forward(self, x):
        a, b = self.body(x), self.sc(x)
        if a.shape != b.shape:
            raise ValueError("residual shapes differ (no broadcasting in cnnc)")
        return a + b


class Gate(nn.Module):  # x * body(x), the body's [C, 1, 1] broadcast (squeeze-excitation)
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        g = self.body(x)
        if g.shape != x.shape and g.shape[2:] != (1, 1):
            raise ValueError("gate shape")
        if g.shape[1] != x.shape[1]:
            raise ValueError("gate channels")
        return x * g


class Tap(nn.Module):  # `output NAME { body }`: body(x) kept as a named output, x goes on
    def __init__(self, name, body):
        super().__init__()
        self.name, self.body, self.last = name, body, None

    def forward(self, x):
        self.last = self.body(x)
        return x


def taps_of(model):
    """the named outputs' taps in textual order (registration order)"""
    return [m for m in model.modules() if isinstance(m, Tap)]


class Crop(nn.Module):  # crop [t,b,l,r] off (reference for a padded transposed conv)
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        t, b, l, r = self.p
        return x[:, :, t:x.shape[2] - b, l:x.shape[3] - r]


class PadVal(nn.Module):
    def __init__(self, p, v):
        super().__init__()
        self.p, self.v = p, v

    def forward(self, x):
        t, b, l, r = self.p
        return F.pad(x, (l, r, t, b), value=self.v)


class SliceC(nn.Module):  # cnnc's slice(a, b): x[:, a:b]
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return x[:, self.a:self.b]


class ShuffleC(nn.Module):  # ShuffleNet's channel shuffle, written out (autograd through views)
    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, self.g, c // self.g, h, w).transpose(1, 2).reshape(n, c, h, w)


def gen_slice(rng, C):
    a = rng.randint(0, C - 1)
    b = rng.randint(a + 1, C)
    return Leaf("slice", f"slice({a}, {b})", SliceC(a, b), None, ["slice"])


def gen_shuffle(rng, C):
    g = rng.choice([d for d in range(1, C + 1) if C % d == 0])
    return Leaf("channel_shuffle", f"channel_shuffle({g})", ShuffleC(g), None, ["channel_shuffle"])


def gen_pixel_shuffle(rng, C, H, W):
    # PyTorch's own PixelShuffle / PixelUnshuffle, with a factor that fits (else a shuffle).
    ups = [r for r in (2, 3) if C % (r * r) == 0 and H * W * r * r <= 1024]
    downs = [r for r in (2, 3, 4) if H % r == 0 and W % r == 0]
    if ups and (not downs or rng.random() < 0.5):
        r = rng.choice(ups)
        return Leaf("pixel_shuffle", f"pixel_shuffle({r})", nn.PixelShuffle(r), None, ["pixel_shuffle"])
    if downs:
        r = rng.choice(downs)
        return Leaf("pixel_unshuffle", f"pixel_unshuffle({r})", nn.PixelUnshuffle(r), None,
                    ["pixel_unshuffle"])
    return gen_shuffle(rng, C)


class RaiseMod(nn.Module):  # a config torch rejects at construction
    def forward(self, x):
        raise ValueError("torch rejects this config")


class SoftmaxC(nn.Module):
    def forward(self, x):
        return torch.softmax(x, 1)


# ---------------------------------------------------------------- leaf layers
class Leaf:
    """a layer: cnn text, torch module, its parametrised torch module (for name mapping)"""

    def __init__(self, kind, text, mod, pmod=None, feats=()):
        self.kind, self.text, self.mod, self.pmod, self.feats = kind, text, mod, pmod, set(feats)


def fmt(v):
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def rint_or_pair(rng, lo, hi, p_pair=0.3):
    if rng.random() < p_pair:
        return [rng.randint(lo, hi), rng.randint(lo, hi)]
    return rng.randint(lo, hi)


def gen_conv(rng, C, transposed=False):
    feats = ["convT" if transposed else "conv"]
    g = 1
    if rng.random() < 0.25:
        divs = [d for d in range(2, C + 1) if C % d == 0]
        if divs:
            g = rng.choice(divs)
            feats.append("groups")
    out = g * rng.randint(1, max(1, 6 // g))
    k = rint_or_pair(rng, 1, 5)
    args = [str(out), fmt(k)]
    kw = {}
    stride = 1
    if rng.random() < 0.4:
        stride = rint_or_pair(rng, 1, 3)
        kw["stride"] = stride
        feats.append("stride")
    dil = 1
    if rng.random() < 0.25:
        dil = rint_or_pair(rng, 1, 3)
        kw["dilation"] = dil
        feats.append("dilation")
    pad = 0
    r = rng.random()
    if transposed:
        if r < 0.5:
            pad = rint_or_pair(rng, 0, 2)
            kw["pad"] = pad
            feats.append("pad")
        elif r < 0.6:
            pad = [rng.randint(0, 2) for _ in range(4)]
            kw["pad"] = pad
            feats.append("pad4")
        if transposed and rng.random() < 0.5 and "stride" not in kw:
            stride = rint_or_pair(rng, 2, 3)
            kw["stride"] = stride
            feats.append("stride")
        if rng.random() < 0.5:
            sh, sw = pair(stride)
            dh, dw = pair(dil)
            # Below the stride or the dilation (PyTorch's rule).
            op = [rng.randint(0, max(sh, dh) - 1), rng.randint(0, max(sw, dw) - 1)]
            if rng.random() < 0.5 and op[0] == op[1]:
                op = op[0]
            if op != 0 and op != [0, 0]:
                kw["output_pad"] = op
                feats.append("output_pad")
    else:
        if r < 0.4:
            pad = rint_or_pair(rng, 0, 3)
            kw["pad"] = pad
            feats.append("pad")
        elif r < 0.55:
            pad = [rng.randint(0, 3) for _ in range(4)]
            kw["pad"] = pad
            feats.append("pad4")
        elif r < 0.7:
            pad = "same"
            kw["pad"] = "same"
            feats.append("same")
            if stride != 1 and rng.random() < 0.8:
                del kw["stride"]
                stride = 1
    if g != 1:
        kw["groups"] = g
    bias = True
    if rng.random() < 0.25:
        bias = False
        kw["bias"] = "false"
        feats.append("nobias")
    text = ("convT" if transposed else "conv") + "(" + ", ".join(args + [f"{a}={fmt(b)}" for a, b in kw.items()]) + ")"
    if transposed:
        op = kw.get("output_pad", 0)
        if isinstance(pad, list) and len(pad) == 4:
            m = nn.ConvTranspose2d(C, out, pair(k), pair(stride), 0, pair(op), g, bias, pair(dil))
            mod = nn.Sequential(m, Crop(pad))
        else:
            m = nn.ConvTranspose2d(C, out, pair(k), pair(stride), pair(pad), pair(op), g, bias, pair(dil))
            mod = m
    else:
        if isinstance(pad, list) and len(pad) == 4:
            m = nn.Conv2d(C, out, pair(k), pair(stride), 0, pair(dil), g, bias)
            mod = nn.Sequential(nn.ZeroPad2d((pad[2], pad[3], pad[0], pad[1])), m)
        elif pad == "same":
            if pair(stride) != (1, 1):
                m, mod = None, RaiseMod()
            else:
                m = nn.Conv2d(C, out, pair(k), pair(stride), "same", pair(dil), g, bias)
                mod = m
        else:
            m = nn.Conv2d(C, out, pair(k), pair(stride), pair(pad), pair(dil), g, bias)
            mod = m
    return Leaf(feats[0], text, mod, m, feats)


def gen_pool(rng, kind):
    feats = [kind]
    k = rint_or_pair(rng, 1, 4)
    kw = {}
    stride = k
    if rng.random() < 0.5:
        stride = rint_or_pair(rng, 1, 3)
        kw["stride"] = stride
        feats.append("stride!=k")
    pad = 0
    r = rng.random()
    kh, kw_ = pair(k)
    if r < 0.45:
        pad = [rng.randint(0, kh // 2), rng.randint(0, kw_ // 2)]
        if pad[0] == pad[1] and rng.random() < 0.5:
            pad = pad[0]
        kw["pad"] = pad
        feats.append("pad")
    elif r < 0.55:
        pad = [rng.randint(0, kh // 2), rng.randint(0, kh // 2), rng.randint(0, kw_ // 2), rng.randint(0, kw_ // 2)]
        kw["pad"] = pad
        feats.append("pad4")
    ceil = False
    if not (isinstance(pad, list) and len(pad) == 4) and rng.random() < 0.4:
        ceil = True
        kw["ceil"] = "true"
        feats.append("ceil")
    count_pad = True
    if kind == "avgpool" and not (isinstance(pad, list) and len(pad) == 4) and rng.random() < 0.3:
        count_pad = False
        kw["count_include_pad"] = "false"
        feats.append("count_include_pad=false")
    text = kind + "(" + ", ".join([fmt(k)] + [f"{a}={fmt(b)}" for a, b in kw.items()]) + ")"
    if isinstance(pad, list) and len(pad) == 4:
        if kind == "maxpool":
            mod = nn.Sequential(PadVal(pad, float("-inf")), nn.MaxPool2d(pair(k), pair(stride), 0))
        else:
            mod = nn.Sequential(PadVal(pad, 0.0), nn.AvgPool2d(pair(k), pair(stride), 0))
    elif kind == "maxpool":
        mod = nn.MaxPool2d(pair(k), pair(stride), pair(pad), ceil_mode=ceil)
    else:
        mod = nn.AvgPool2d(pair(k), pair(stride), pair(pad), ceil_mode=ceil, count_include_pad=count_pad)
    return Leaf(kind, text, mod, None, feats)


class ScaleC(nn.Module):  # cnnc's scale(k): x * k, as Inception-ResNet writes it
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def gen_act(rng):
    r = rng.randrange(14)
    if r == 13:
        k = rng.choice([0.1, 0.17, -1.5, 2.0, round(rng.uniform(-3, 3), 3)])
        return Leaf("scale", f"scale({k})", ScaleC(k), None, ["scale"])
    if r == 12:
        return Leaf("mish", "mish", nn.Mish(), None, ["mish"])
    if r == 9:
        return Leaf("relu6", "relu6", nn.ReLU6(), None, ["relu6"])
    if r == 10:
        return Leaf("hardswish", "hardswish", nn.Hardswish(), None, ["hardswish"])
    if r == 11:
        return Leaf("hardsigmoid", "hardsigmoid", nn.Hardsigmoid(), None, ["hardsigmoid"])
    if r == 7:
        return Leaf("silu", "silu", nn.SiLU(), None, ["silu"])
    if r == 8:
        return Leaf("gelu", "gelu", nn.GELU(), None, ["gelu"])
    if r == 0:
        return Leaf("relu", "relu", nn.ReLU(), None, ["relu"])
    if r == 1:
        return Leaf("sigmoid", "sigmoid", nn.Sigmoid(), None, ["sigmoid"])
    if r == 2:
        return Leaf("tanh", "tanh", nn.Tanh(), None, ["tanh"])
    if r == 3:
        if rng.random() < 0.5:
            return Leaf("leaky_relu", "leaky_relu", nn.LeakyReLU(0.01), None, ["leaky_relu"])
        a = round(rng.uniform(0.05, 0.5), 3)
        return Leaf("leaky_relu", f"leaky_relu(alpha={a})", nn.LeakyReLU(a), None, ["leaky_relu"])
    if r == 4:
        if rng.random() < 0.5:
            return Leaf("elu", "elu", nn.ELU(1.0), None, ["elu"])
        a = round(rng.uniform(0.2, 2.0), 3)
        return Leaf("elu", f"elu(alpha={a})", nn.ELU(a), None, ["elu"])
    if r == 5:
        return Leaf("softmax", "softmax", SoftmaxC(), None, ["softmax"])
    return Leaf("relu", "relu", nn.ReLU(), None, ["relu"])


def gen_bn(rng, C, rank):
    kw = {}
    eps = 1e-5
    if rng.random() < 0.3:
        eps = rng.choice([1e-3, 0.01, 0.1])
        kw["eps"] = eps
    mom = 0.1
    if rng.random() < 0.2:
        mom = rng.choice([0.01, 0.3, 0.9])
        kw["momentum"] = mom
    affine = rng.random() < 0.8
    if not affine:
        kw["affine"] = "false"
    text = "batchnorm" + ("(" + ", ".join(f"{a}={b}" for a, b in kw.items()) + ")" if kw else "")
    m = (nn.BatchNorm2d if rank == 3 else nn.BatchNorm1d)(C, eps=eps, momentum=mom, affine=affine)
    return Leaf("batchnorm", text, m, m, ["bn2d" if rank == 3 else "bn1d"] + ([] if affine else ["bn_noaffine"]))


def gen_prelu(rng, C):
    per = rng.random() < 0.5
    m = nn.PReLU(C if per else 1)
    return Leaf("prelu", "prelu(per_channel=true)" if per else "prelu", m, m, ["prelu"])


def gen_norm(rng, C, rank, per_channel):
    """groupnorm(g) or instancenorm, with groups of more than one value (per_channel: the
    values of one channel of one sample)"""
    kw = {}
    eps = 1e-5
    if rng.random() < 0.3:
        eps = rng.choice([1e-3, 0.01, 0.1])
        kw["eps"] = eps
    if rank == 3 and per_channel > 1 and rng.random() < 0.4:
        affine = rng.random() < 0.5
        if affine:
            kw["affine"] = "true"
        text = "instancenorm" + ("(" + ", ".join(f"{a}={b}" for a, b in kw.items()) + ")" if kw else "")
        m = nn.InstanceNorm2d(C, eps=eps, affine=affine)
        return Leaf("instancenorm", text, m, m if affine else None, ["instancenorm"])
    groups = [g for g in range(1, C + 1) if C % g == 0 and (C // g) * per_channel > 1]
    if not groups:
        return gen_act(rng)
    g = rng.choice(groups)
    affine = rng.random() < 0.8
    if not affine:
        kw["affine"] = "false"
    text = f"groupnorm({g}" + "".join(f", {a}={b}" for a, b in kw.items()) + ")"
    m = nn.GroupNorm(g, C, eps=eps, affine=affine)
    return Leaf("groupnorm", text, m, m if affine else None, ["groupnorm"])


class LayerNorm2d(nn.Module):
    """ConvNeXt's LayerNorm2d: nn.LayerNorm over the channels of each pixel"""

    def __init__(self, C, eps, affine):
        super().__init__()
        self.ln = nn.LayerNorm(C, eps=eps, elementwise_affine=affine)

    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """ConvNeXt's layer scale: a learned factor per channel, [C, 1, 1] (or [F])"""

    def __init__(self, C, rank, init):
        super().__init__()
        self.weight = nn.Parameter(torch.full((C, 1, 1) if rank == 3 else (C,), float(init)))

    def forward(self, x):
        return x * self.weight


def gen_layernorm(rng, C, rank):
    """layernorm over the channels (features) of more than one"""
    if C == 1:
        return gen_act(rng)
    kw = {}
    eps = 1e-5
    if rng.random() < 0.3:
        eps = rng.choice([1e-6, 1e-3, 0.1])
        kw["eps"] = eps
    affine = rng.random() < 0.8
    if not affine:
        kw["affine"] = "false"
    text = "layernorm" + ("(" + ", ".join(f"{a}={b}" for a, b in kw.items()) + ")" if kw else "")
    m = LayerNorm2d(C, eps, affine) if rank == 3 else nn.LayerNorm(C, eps=eps, elementwise_affine=affine)
    inner = m.ln if rank == 3 else m
    return Leaf("layernorm", text, m, inner if affine else None, ["layernorm"])


def gen_layer_scale(rng, C, rank):
    init = rng.choice([1e-6, 0.1, 1.0, -0.5, 2.0])
    m = LayerScale(C, rank, init)
    return Leaf("layer_scale", f"layer_scale({init})", m, m, ["layer_scale"])


def gen_dropout(rng):
    p = rng.choice([None, 0.1, 0.3, 0.7])
    return Leaf("dropout", "dropout" if p is None else f"dropout({p})", nn.Dropout(p or 0.5), None, ["dropout"])


def gen_image_leaf(rng, C, H, W):
    r = rng.random()
    if r < 0.28:
        return gen_conv(rng, C)
    if r < 0.38:
        return gen_conv(rng, C, transposed=True)
    if r < 0.48:
        return gen_pool(rng, "maxpool")
    if r < 0.58:
        return gen_pool(rng, "avgpool")
    if r < 0.64:
        if rng.random() < 0.8:
            sz = [rng.randint(1, 7), rng.randint(1, 7)]
            t = f"adaptive_avgpool({fmt(sz)})"
        else:
            s = rng.randint(1, 6)
            sz = [s, s]
            t = f"adaptive_avgpool({s})"
        feats = ["adaptive"]
        if H % sz[0] or W % sz[1]:
            feats.append("adaptive_nondiv")
        if sz[0] > H or sz[1] > W:
            feats.append("adaptive_up")
        if rng.random() < 0.4:
            if sz == [1, 1] and rng.random() < 0.5:
                return Leaf("global_maxpool", "global_maxpool", nn.AdaptiveMaxPool2d(1), None,
                            ["adaptive_max", "global_maxpool"])
            t = t.replace("avgpool", "maxpool")
            feats = [f.replace("adaptive", "adaptive_max") for f in feats]
            return Leaf("adaptive_maxpool", t, nn.AdaptiveMaxPool2d(tuple(sz)), None, feats)
        return Leaf("adaptive_avgpool", t, nn.AdaptiveAvgPool2d(tuple(sz)), None, feats)
    if r < 0.72:
        return gen_bn(rng, C, 3)
    if r < 0.76:
        pick = rng.random()
        if pick < 0.25:
            return gen_layernorm(rng, C, 3)
        if pick < 0.4:
            return gen_layer_scale(rng, C, 3)
        return gen_norm(rng, C, 3, H * W)
    if r < 0.90:
        return gen_act(rng)
    if r < 0.92:
        return gen_prelu(rng, C)
    if r < 0.95:
        pick = rng.random()
        if pick < 0.3:
            return gen_slice(rng, C)
        return gen_shuffle(rng, C) if pick < 0.6 else gen_pixel_shuffle(rng, C, H, W)
    if r < 0.97 and H * W <= 256:
        return gen_upsample(rng, H, W)
    if r < 0.985:
        return gen_pad(rng, H, W)
    return gen_dropout(rng)


def gen_pad(rng, H, W):
    # cnnc's [top, bottom, left, right]; PyTorch's (left, right, top, bottom).
    mode = rng.choice(["zeros", "reflect", "replicate"])
    most_h = H - 1 if mode == "reflect" else 4
    most_w = W - 1 if mode == "reflect" else 4
    t, b = rng.randint(0, min(most_h, 4)), rng.randint(0, min(most_h, 4))
    l, r = rng.randint(0, min(most_w, 4)), rng.randint(0, min(most_w, 4))
    flag = {"zeros": "", "reflect": ", reflect=true", "replicate": ", replicate=true"}[mode]
    cls = {"zeros": nn.ZeroPad2d, "reflect": nn.ReflectionPad2d,
           "replicate": nn.ReplicationPad2d}[mode]
    return Leaf("pad", f"pad([{t}, {b}, {l}, {r}]{flag})", cls((l, r, t, b)), None, ["pad_" + mode])


def gen_upsample(rng, H, W):
    if rng.random() < 0.3:
        # To a size: PyTorch's interpolate(size=…), larger or smaller, any ratio.
        size = [rng.randint(1, 2 * H + 2), rng.randint(1, 2 * W + 2)]
        mode = rng.choice(["nearest", "bilinear", "bilinear_align"])
        if mode == "nearest":
            return Leaf("upsample", f"upsample(size={fmt(size)})", nn.Upsample(size=tuple(size)),
                        None, ["upsample_size"])
        align = mode == "bilinear_align"
        return Leaf("upsample",
                    f"upsample(size={fmt(size)}, bilinear=true, align_corners={str(align).lower()})",
                    nn.Upsample(size=tuple(size), mode="bilinear", align_corners=align), None,
                    ["upsample_size", "upsample_size_bilinear"])
    if rng.random() < 0.4:
        sh, sw = rng.randint(1, 3), rng.randint(1, 3)
        align = rng.random() < 0.5
        scale = f"{sh}" if sh == sw else f"[{sh}, {sw}]"
        feats = ["upsample_bilinear"] + (["bilinear_align_corners"] if align else [])
        return Leaf("upsample", f"upsample({scale}, bilinear=true, align_corners={str(align).lower()})",
                    nn.Upsample(scale_factor=(sh, sw), mode="bilinear", align_corners=align), None,
                    feats)
    if rng.random() < 0.7:
        s = rng.randint(1, 3)
        return Leaf("upsample", f"upsample({s})", nn.Upsample(scale_factor=s), None, ["upsample"])
    sh, sw = rng.randint(1, 3), rng.randint(1, 3)
    return Leaf("upsample", f"upsample([{sh}, {sw}])",
                nn.Upsample(scale_factor=(sh, sw)), None, ["upsample", "upsample_pair"])


# ---------------------------------------------------------------- network tree
# node: Leaf | ("concat", [branch...]) | ("residual", body, shortcut|None) | ("gate", body)
#       | ("block", name, [nodes])
def node_text(n, ind):
    p = "    " * ind
    if isinstance(n, Leaf):
        return [p + n.text]
    if n[0] == "concat":
        lines = [p + "concat {"]
        for b in n[1]:
            if not b:
                lines.append(p + "    {}")
            else:
                lines.append(p + "    {")
                for m in b:
                    lines += node_text(m, ind + 2)
                lines.append(p + "    }")
        lines.append(p + "}")
        return lines
    if n[0] == "residual":
        lines = [p + "residual {"]
        for m in n[1]:
            lines += node_text(m, ind + 1)
        if n[2] is None:
            lines.append(p + "}")
        else:
            lines.append(p + "} shortcut {")
            for m in n[2]:
                lines += node_text(m, ind + 1)
            lines.append(p + "}")
        return lines
    if n[0] == "gate":
        lines = [p + "gate {"]
        for m in n[1]:
            lines += node_text(m, ind + 1)
        lines.append(p + "}")
        return lines
    if n[0] == "block":
        return [p + n[1] + "()"]
    if n[0] == "output":
        if not n[2]:
            return [p + f"output {n[1]} {{}}"]
        lines = [p + f"output {n[1]} {{"]
        for m in n[2]:
            lines += node_text(m, ind + 1)
        lines.append(p + "}")
        return lines
    raise ValueError(n)


def node_mod(n):
    if isinstance(n, Leaf):
        return n.mod
    if n[0] == "concat":
        return Concat([Seq([node_mod(m) for m in b]) for b in n[1]])
    if n[0] == "residual":
        return Residual(Seq([node_mod(m) for m in n[1]]),
                        nn.Identity() if n[2] is None else Seq([node_mod(m) for m in n[2]]))
    if n[0] == "gate":
        return Gate(Seq([node_mod(m) for m in n[1]]))
    if n[0] == "block":
        return Seq([node_mod(m) for m in n[2]])
    if n[0] == "output":
        return Tap(n[4], Seq([node_mod(m) for m in n[2]]))


def leaves(n):
    if isinstance(n, Leaf):
        yield n
    elif n[0] == "concat":
        for b in n[1]:
            for m in b:
                yield from leaves(m)
    elif n[0] == "residual":
        for m in n[1]:
            yield from leaves(m)
        if n[2] is not None:
            for m in n[2]:
                yield from leaves(m)
    elif n[0] == "gate":
        for m in n[1]:
            yield from leaves(m)
    elif n[0] in ("block", "output"):
        for m in n[2]:
            yield from leaves(m)


def blocks_of(n, acc):
    if isinstance(n, Leaf):
        return
    if n[0] == "block":
        for m in n[2]:
            blocks_of(m, acc)
        acc.append(n)
    elif n[0] == "concat":
        for b in n[1]:
            for m in b:
                blocks_of(m, acc)
    elif n[0] == "residual":
        for m in n[1] + (n[2] or []):
            blocks_of(m, acc)
    elif n[0] == "gate":
        for m in n[1]:
            blocks_of(m, acc)


def net_text(name, inshape, nodes):
    acc = []
    for n in nodes:
        blocks_of(n, acc)
    lines = []
    for b in acc:
        lines.append(f"block {b[1]}() {{")
        for m in b[2]:
            lines += node_text(m, 1)
        lines.append("}")
        lines.append("")
    lines.append(f"model {name}(input: {fmt(list(inshape))}) {{")
    for n in nodes:
        lines += node_text(n, 1)
    lines.append("}")
    return "\n".join(lines) + "\n"


def try_shape(mod, x):
    """torch output of mod on x (eval mode), or None if torch rejects"""
    try:
        mod.eval()
        with torch.no_grad():
            y = mod(x)
        if y.numel() == 0 or any(s <= 0 for s in y.shape):
            return None
        return y
    except Exception:
        return None


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.rejects = []  # (nodes prefix, bad node, input shape) torch rejects
        self.nblocks = 0
        # Named outputs draw from a stream of their own: a network without one is the same
        # network its seed gave before they were generated.
        self.orng = random.Random(seed + 10**9)
        # ("output", name, body, channels of class scores to come or None, name in the model)
        self.taps = []
        self.aux_weight = 0.0

    def tap(self, x, scope=""):
        """a named output of x: as it is, after one image layer, or (to become class scores
        once the head's classes are known) pooled and flattened"""
        rng = self.orng
        body, cur = [], x
        if rng.random() < 0.5:
            lf = gen_image_leaf(rng, *x.shape[1:])
            y = try_shape(lf.mod, x)
            if y is not None and y.numel() <= 4 * 4000:
                body.append(lf)
                cur = y
        scores = rng.random() < 0.65
        if scores:
            body += [Leaf("global_avgpool", "global_avgpool", nn.AdaptiveAvgPool2d(1), None, ["global_avgpool"]),
                     Leaf("flatten", "flatten", nn.Flatten(), None, ["flatten"])]
        # The channels the head's linear layer will take (None: features as they are).
        name = f"aux{len(self.taps) + 1}"
        n = ("output", name, body, cur.shape[1] if scores else None, scope + name)
        self.taps.append(n)
        return n

    def reject(self, prefix, bad, depth=0):
        if depth == 0 and len(self.rejects) < 2 and self.rng.random() < 0.5:
            self.rejects.append((list(prefix), bad))

    def image_node(self, nodes, x, depth=0):
        """pick an image-stage node that torch accepts on x; returns (node, y)"""
        rng = self.rng
        C, H, W = x.shape[1:]
        for _ in range(30):
            r = rng.random()
            if depth < 2 and r < 0.12:
                nb = rng.randint(2, 3)
                branches = []
                for _b in range(nb):
                    br = []
                    if rng.random() < 0.25:
                        branches.append(br)
                        continue
                    cur = x
                    for _l in range(rng.randint(1, 2)):
                        if rng.random() < 0.6:  # size preserving conv
                            k = rng.choice([1, 3, 5])
                            if rng.random() < 0.5:
                                lf = Leaf("conv", f"conv({rng.randint(1,4)}, {k}, pad=same)", None)
                                lf = mk_conv_simple(cur.shape[1], lf.text, rng.randint(1, 4), k, "same", feats=["same"])
                            else:
                                lf = mk_conv_simple(cur.shape[1], None, rng.randint(1, 4), k, k // 2)
                        else:
                            lf = gen_image_leaf(rng, *cur.shape[1:])
                        y = try_shape(lf.mod, cur)
                        if y is None:
                            break
                        br.append(lf)
                        cur = y
                    branches.append(br)
                n = ("concat", branches)
                y = try_shape(node_mod(n), x)
                if y is None:
                    self.reject(nodes, n, depth)
                    continue
                return n, y
            if depth < 2 and r < 0.24:
                body, cur = [], x
                for _l in range(rng.randint(1, 3)):
                    if rng.random() < 0.5:
                        k = rng.choice([1, 3])
                        lf = mk_conv_simple(cur.shape[1], None, rng.choice([C, C, rng.randint(1, 5)]), k, k // 2,
                                            stride=rng.choice([1, 1, 1, 2]))
                    elif rng.random() < 0.2:
                        n2, y2 = self.image_node([], cur, depth + 1)
                        body.append(n2)
                        cur = y2
                        continue
                    else:
                        lf = gen_image_leaf(rng, *cur.shape[1:])
                    y = try_shape(lf.mod, cur)
                    if y is None:
                        continue
                    body.append(lf)
                    cur = y
                if not body:
                    continue
                sc = None
                if cur.shape != x.shape or rng.random() < 0.3:
                    s = max(1, round(x.shape[2] / cur.shape[2])) if cur.shape[2] else 1
                    if rng.random() < 0.8:
                        sc = [mk_conv_simple(C, None, cur.shape[1], 1, 0, stride=s)]
                    else:
                        sc = [gen_image_leaf(rng, C, H, W)]
                n = ("residual", body, sc)
                y = try_shape(node_mod(n), x)
                if y is None:
                    self.reject(nodes, n, depth)
                    continue
                return n, y
            if depth < 2 and r < 0.27:
                # A gate: squeeze-and-excitation (per channel) or a same-shape map.
                if rng.random() < 0.6:
                    mid = max(1, C // rng.choice([1, 2, 4]))
                    gate_act = rng.choice([
                        Leaf("sigmoid", "sigmoid", nn.Sigmoid(), None, ["sigmoid"]),
                        Leaf("hardsigmoid", "hardsigmoid", nn.Hardsigmoid(), None, ["hardsigmoid"])])
                    body = [Leaf("global_avgpool", "global_avgpool", nn.AdaptiveAvgPool2d(1), None,
                                 ["global_avgpool"]),
                            mk_conv_simple(C, None, mid, 1, 0),
                            Leaf("relu", "relu", nn.ReLU(), None, ["relu"]),
                            mk_conv_simple(mid, None, C, 1, 0), gate_act]
                else:
                    body = [mk_conv_simple(C, None, C, 3, 1),
                            Leaf("sigmoid", "sigmoid", nn.Sigmoid(), None, ["sigmoid"])]
                n = ("gate", body)
                y = try_shape(node_mod(n), x)
                if y is None:
                    self.reject(nodes, n, depth)
                    continue
                return n, y
            if depth == 0 and r < 0.30:
                inner, cur = [], x
                for _l in range(rng.randint(1, 3)):
                    n2, cur = self.image_node([], cur, depth + 1)
                    inner.append(n2)
                    if self.orng.random() < 0.3:  # named in the model under the call's name
                        inner.append(self.tap(cur, f"blk{self.nblocks + 1}_1."))
                self.nblocks += 1
                n = ("block", f"blk{self.nblocks}", inner)
                return n, cur
            lf = gen_image_leaf(rng, C, H, W)
            y = try_shape(lf.mod, x)
            if y is None:
                self.reject(nodes, lf, depth)
                continue
            if y.shape[2] * y.shape[3] * y.shape[1] > 4000 or y.shape[2] > 40 or y.shape[3] > 40:
                continue
            return lf, y
        lf = Leaf("relu", "relu", nn.ReLU(), None, ["relu"])
        return lf, x

    def network(self):
        rng = self.rng
        flat_input = rng.random() < 0.07
        nodes = []
        if flat_input:
            inshape = [rng.randint(2, 12)]
            x = torch.randn(2, inshape[0])
        else:
            inshape = [rng.randint(1, 4), rng.randint(3, 20), rng.randint(3, 20)]
            x = torch.randn(2, *inshape)
            for _ in range(rng.randint(1, 7)):
                n, x = self.image_node(nodes, x)
                nodes.append(n)
                if self.orng.random() < 0.15:
                    nodes.append(self.tap(x))
        head = rng.random()
        if flat_input or head < 0.75:  # classifier head
            if not flat_input:
                if rng.random() < 0.35:
                    if rng.random() < 0.3:
                        lf = Leaf("global_maxpool", "global_maxpool", nn.AdaptiveMaxPool2d(1), None, ["global_maxpool"])
                    else:
                        lf = Leaf("global_avgpool", "global_avgpool", nn.AdaptiveAvgPool2d(1), None, ["global_avgpool"])
                    nodes.append(lf)
                    x = lf.mod(x)
                lf = Leaf("flatten", "flatten", nn.Flatten(), None, ["flatten"])
                nodes.append(lf)
                x = lf.mod(x)
            for _ in range(rng.randint(0, 3)):
                F_ = x.shape[1]
                r = rng.random()
                if r < 0.4:
                    o = rng.randint(2, 10)
                    b = rng.random() < 0.8
                    m = nn.Linear(F_, o, bias=b)
                    lf = Leaf("linear", f"linear({o})" if b else f"linear({o}, bias=false)", m, m,
                              ["linear"] + ([] if b else ["nobias"]))
                elif r < 0.55:
                    lf = gen_bn(rng, F_, 1)
                elif r < 0.6:
                    pick = rng.random()
                    if pick < 0.25:
                        lf = gen_layernorm(rng, F_, 1)
                    elif pick < 0.4:
                        lf = gen_layer_scale(rng, F_, 1)
                    else:
                        lf = gen_norm(rng, F_, 1, 1)
                elif r < 0.85:
                    lf = gen_act(rng)
                elif r < 0.9:
                    lf = gen_prelu(rng, F_)
                elif r < 0.95 and F_ > 1:
                    lf = gen_slice(rng, F_)
                else:
                    lf = gen_dropout(rng)
                nodes.append(lf)
                x = lf.mod.eval()(x)
            K = rng.randint(2, 6)
            m = nn.Linear(x.shape[1], K)
            nodes.append(Leaf("linear", f"linear({K})", m, m, ["linear"]))
            if rng.random() < 0.05:
                nodes.append(Leaf("softmax", "softmax", SoftmaxC(), None, ["softmax"]))
            classifier = True
            # The pooled taps become class scores of K classes too.
            for _o, _name, body, channels, _q in self.taps:
                if channels:
                    m = nn.Linear(channels, K)
                    body.append(Leaf("linear", f"linear({K})", m, m, ["linear"]))
        else:
            classifier = False
        # Training adds each named output's cross-entropy, which needs class scores of the
        # main output's shape: otherwise (or at random) it trains on the main output alone.
        if self.taps and classifier and all(t[3] for t in self.taps) and self.orng.random() < 0.8:
            self.aux_weight = self.orng.choice([0.3, 1.0])
        return inshape, nodes, classifier


def mk_conv_simple(C, text, out, k, pad, stride=1, feats=()):
    if pad == "same":
        m = nn.Conv2d(C, out, k, 1, "same")
        text = f"conv({out}, {k}, pad=same)"
    else:
        m = nn.Conv2d(C, out, k, stride, pad)
        text = f"conv({out}, {k}" + (f", stride={stride}" if stride != 1 else "") + (f", pad={pad}" if pad else "") + ")"
    return Leaf("conv", text, m, m, ["conv"] + list(feats) + (["stride"] if stride != 1 else []))


# ---------------------------------------------------------------- running cnnc
def cnnc(*args):
    p = subprocess.run([CNNC, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def param_list(nodes):
    """torch parameter tensors in textual order: list of (layer kind, [(suffix, tensor)])"""
    out = []
    for n in nodes:
        for lf in leaves(n):
            m = lf.pmod
            if m is None:
                continue
            # A batch norm without affine has running statistics only.
            ps = [("weight", m.weight)] if m.weight is not None else []
            if getattr(m, "bias", None) is not None:
                ps.append(("bias", m.bias))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                ps += [("running_mean", m.running_mean), ("running_var", m.running_var)]
            out.append((lf.kind, ps))
    return out


def randomize(nodes, g):
    for n in nodes:
        for lf in leaves(n):
            m = lf.pmod
            if isinstance(m, nn.PReLU):
                with torch.no_grad():
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.8 - 0.2)
            elif isinstance(m, LayerScale):
                with torch.no_grad():
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 1.5 - 0.25)
            elif isinstance(m, (nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)):
                with torch.no_grad():
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 1.5 + 0.25)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                with torch.no_grad():
                    if m.affine:
                        m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 1.5 + 0.25)
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
            elif m is not None and getattr(m, "bias", None) is not None:
                with torch.no_grad():
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)


def torch_loss(model, out, labels, aux_weight):
    """the training loss: the main output's cross-entropy plus each named output's, weighted"""
    loss = F.cross_entropy(out, labels)
    if aux_weight:
        for t in taps_of(model):
            loss = loss + aux_weight * F.cross_entropy(t.last, labels)
    return loss


def torch32_err(model, x, labels, m, a, tg, aux_weight):
    import copy
    mods = dict(model.named_modules())
    mname = [k for k, v in mods.items() if v is m][0]
    for t in taps_of(model):
        t.last = None  # a tensor inside autograd's graph, which deepcopy refuses
    m32 = copy.deepcopy(model).float().train()
    # the running stats were updated by the float64 train forward; batch stats do not use them
    out = m32(x.float())
    torch_loss(m32, out, labels, aux_weight).backward()
    g32 = getattr(dict(m32.named_modules())[mname], a).grad
    if g32 is None:  # no path from the loss (a named output's head at --aux-weight 0)
        g32 = torch.zeros_like(tg)
    return float((g32.double() - tg).abs().max())


def close(a, b, rtol=1e-4, atol_scale=None):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
        same_nan = np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(np.nan_to_num(a), np.nan_to_num(b), rtol=rtol, atol=1e-6)
        return same_nan, "non-finite values"
    scale = atol_scale if atol_scale is not None else max(1.0, float(np.abs(b).max(initial=0)))
    err = float(np.abs(a - b).max(initial=0))
    return err <= rtol * scale + 1e-6, f"max abs err {err:.3g} (scale {scale:.3g})"


def run_one(seed, stats, fails, dirs, given=None):
    g = Gen(seed)
    torch.manual_seed(seed)
    if given is None:
        inshape, nodes, classifier = g.network()
    else:
        inshape, nodes, classifier = given
    name = f"Net{seed}"
    text = net_text(name, inshape, nodes)
    feats = set()
    for n in nodes:
        if not isinstance(n, Leaf):
            feats.add(n[0])
        for lf in leaves(n):
            feats |= lf.feats
    base = f"{dirs}/n{seed}"
    path = base + ".cnn"
    with open(path, "w") as f:
        f.write(text)
    problems = []

    def fail(kind, msg):
        problems.append((kind, msg))

    # torch-rejected variants must be rejected by cnnc
    for i, (prefix, bad) in enumerate(g.rejects):
        rtext = net_text(f"Rej{seed}_{i}", inshape, prefix + [bad, Leaf("relu", "relu", None)])
        rpath = f"{base}_rej{i}.cnn"
        with open(rpath, "w") as f:
            f.write(rtext)
        rc, so, se = cnnc("check", rpath)
        stats["reject_tests"] += 1
        if rc == 0:
            fail("cnnc_accepts_torch_rejects", f"{rpath}: cnnc check rc=0 but torch rejects\n{rtext}\n{se}")

    model = Seq([node_mod(n) for n in nodes])
    gen = torch.Generator().manual_seed(seed)
    randomize(nodes, gen)
    model.eval()
    N = 3
    x = torch.randn(N, *inshape, generator=gen)
    with torch.no_grad():
        try:
            ref = model.double()(x.double())
        except Exception as e:
            fail("torch_error", repr(e))
            return problems, feats, text
    ref_taps = [(t.name, t.last) for t in taps_of(model)]
    for _o, _name, _body, channels, qualified in g.taps:
        feats.add("output_scores" if channels else "output_features")
        if "." in qualified:
            feats.add("output_in_block")

    # 1. summary
    rc, so, se = cnnc("summary", path, "--format", "json")
    if rc != 0:
        fail("cnnc_rejects_torch_accepts", f"rc={rc}\n{so[:2000]}\n{se[:2000]}")
        return problems, feats, text
    summ = json.loads(so)
    tparams = sum(p.numel() for p in model.parameters())
    if list(summ["output"]) != list(ref.shape[1:]):
        fail("shape", f"cnnc output {summ['output']} torch {list(ref.shape[1:])}")
    if summ["params"] != tparams:
        fail("params", f"cnnc params {summ['params']} torch {tparams}")
    named = [(o["name"], o["shape"]) for o in summ.get("named_outputs", [])]
    if named != [(nm, list(t.shape[1:])) for nm, t in ref_taps]:
        fail("named_outputs", f"cnnc {named} torch {[(nm, list(t.shape[1:])) for nm, t in ref_taps]}")

    # name mapping from cnnc's initializers
    rc, so, se = cnnc("export", path, "-o", base + ".plain.onnx")
    if rc != 0:
        fail("export_plain", se)
        return problems, feats, text
    inits = [(i.name, tuple(i.dims)) for i in onnx.load(base + ".plain.onnx").graph.initializer]
    groups = collections.OrderedDict()
    for nm, dims in inits:
        pre, suf = nm.rsplit(".", 1)
        if suf not in ("weight", "bias", "running_mean", "running_var"):  # lowering constants
            continue
        groups.setdefault(pre, []).append((suf, dims))
    plist = param_list(nodes)
    weights, pmap, pmod = {}, {}, {}
    mods = [m for n in nodes for m in (lf.pmod for lf in leaves(n)) if m is not None]
    if len(groups) != len(plist):
        fail("naming", f"cnnc layers with params {list(groups)} vs torch {[k for k, _ in plist]}")
        return problems, feats, text
    for (pre, cs), (kind, ps), mm in zip(groups.items(), plist, mods):
        if [s for s, _ in cs] != [s for s, _ in ps] or [d for _, d in cs] != [tuple(t.shape) for _, t in ps] \
                or pre.rsplit(".", 1)[-1].rstrip("0123456789") != kind:
            fail("naming", f"{pre}: {cs} vs {kind} {[(s, tuple(t.shape)) for s, t in ps]}")
            return problems, feats, text
        for s, t in ps:
            weights[f"{pre}.{s}"] = t.detach().float().numpy()
            pmap[f"{pre}.{s}"] = t
            pmod[f"{pre}.{s}"] = (mm, s)
    save_safetensors(base + ".safetensors", weights)

    # 2. forward
    opset = g.rng.choice(["17", "18", "19", "20", "21"])
    feats.add("opset" + opset)
    rc, so, se = cnnc("export", path, "--weights", base + ".safetensors", "--opset", opset, "-o", base + ".onnx")
    if rc != 0:
        fail("export", se)
        return problems, feats, text
    try:
        onnx.checker.check_model(onnx.load(base + ".onnx"), full_check=True)
    except Exception as e:
        fail("checker", str(e)[:2000])
    try:
        sess = ort.InferenceSession(base + ".onnx", ort_opts, providers=["CPUExecutionProvider"])
        ys = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x.numpy()})))
        ok, msg = close(ys["output"], ref.numpy())
        stats["forward"] += 1
        if not ok:
            fail("forward", msg)
        for nm, t in ref_taps:
            ok, msg = close(ys[nm], t.numpy()) if nm in ys else (False, f"missing from {sorted(ys)}")
            stats["named_output_forward"] += 1
            if not ok:
                fail("forward_named", f"{nm}: {msg}")
    except Exception as e:
        fail("ort_forward", str(e)[:2000])

    # 3. gradients (class scores [K], or per-pixel scores [K, H, W]), and one SGD step
    # Only where the network has named outputs, so that the others run as before.
    aux = ["--aux-weight", str(g.aux_weight)] if g.taps else []
    if "dropout" not in feats and (classifier or ref.dim() == 4) and ref.shape[1] == 1:
        # One class: the cross-entropy is 0 whatever the weights, which cnnc refuses to train.
        rc, so, se = cnnc("export", path, "--grad", *aux, "-o", base + ".grad.onnx")
        stats["one_class_refused"] += 1
        if rc == 0 or "one class" not in se:
            fail("one_class", f"cnnc export --grad rc={rc}: {se[-500:]}")
    elif "dropout" not in feats and (classifier or ref.dim() == 4):
        if not classifier:
            feats.add("seg_loss")
        if g.taps:
            feats.add("aux_loss" if g.aux_weight else "aux_weight0")
        rc, so, se = cnnc("export", path, "--grad", *aux, "--weights", base + ".safetensors", "-o", base + ".grad.onnx")
        if rc != 0:
            fail("export_grad", se)
            return problems, feats, text
        lr, wd = 0.1, g.rng.choice([0.0, 0.0, 0.01])
        rc, so, se = cnnc("export", path, "--train", *aux, "--optimizer", "sgd", "--weight-decay", str(wd),
                          "--weights", base + ".safetensors", "-o", base + ".train.onnx")
        if rc != 0:
            fail("export_train", se)
            return problems, feats, text
        K = ref.shape[1]
        labels = torch.randint(0, K, (N,) + tuple(ref.shape[2:]), generator=gen)
        model.train()
        model.zero_grad()
        try:
            out = model(x.double())
            loss = torch_loss(model, out, labels, g.aux_weight)
            if loss.requires_grad:  # else no parameters: the loss alone is compared
                loss.backward()
            else:
                feats.add("no_parameters")
        except Exception as e:
            stats["grad_skipped_torch"] += 1
            print(f"seed {seed}: torch grad skipped: {e!r}"[:300])
            return problems, feats, text
        try:
            sess = ort.InferenceSession(base + ".grad.onnx", ort_opts, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            res = dict(zip(names, sess.run(None, {"input": x.numpy(), "labels": labels.numpy()})))
            sess = ort.InferenceSession(base + ".train.onnx", ort_opts, providers=["CPUExecutionProvider"])
            tnames = [o.name for o in sess.get_outputs()]
            tres = dict(zip(tnames, sess.run(None, {"input": x.numpy(), "labels": labels.numpy(),
                                                     "lr": np.array(lr, np.float32)})))
        except Exception as e:
            fail("ort_grad", str(e)[:2000])
            return problems, feats, text
        stats["grad"] += 1
        stats["seg_grad" if not classifier else "cls_grad"] += 1
        ok, msg = close(res["loss"], loss.item())
        if not ok:
            fail("loss", f"cnnc {float(res['loss'])} torch {loss.item()} {msg}")
        ok, msg = close(tres["loss"], loss.item())
        if not ok:
            fail("train_loss", f"cnnc {float(tres['loss'])} torch {loss.item()} {msg}")
        gscale = max([float(p.grad.abs().max()) for p in model.parameters() if p.grad is not None] + [1e-3])
        noisy_step = {}  # parameter → the step error its accepted float32 gradient noise allows
        expected = {f"grad.{k}" for k, (m, a) in pmod.items() if a in ("weight", "bias")}
        if set(k for k in names if k.startswith("grad.")) != expected:
            fail("grad_names", f"{sorted(names)} vs {sorted(expected)}")
        for k, (m, a) in pmod.items():
            t = getattr(m, a)
            if a in ("weight", "bias"):
                gk = "grad." + k
                tg = t.grad if t.grad is not None else torch.zeros_like(t)
                if gk in res:
                    gtol_scale = max(gscale * 0.1, float(tg.abs().max()))
                    ok, msg = close(res[gk], tg.numpy(), rtol=1e-3, atol_scale=gtol_scale)
                    # the SGD step moves by lr times the gradient: the error the gradient's
                    # comparison accepts, the step's may have too
                    noisy_step[k] = lr * (1e-3 * gtol_scale + 1e-6)
                    if not ok:
                        # ill-conditioned (e.g. stacked batch norms on a batch of 3): accept if torch's
                        # own float32 gradient is off from the float64 one by a similar amount
                        e32 = torch32_err(model, x, labels, m, a, tg, g.aux_weight)
                        ecn = float(np.abs(res[gk] - tg.numpy()).max())
                        if ecn <= 10 * e32:
                            stats["grad_fp32_noise"] += 1
                            # the SGD step moves by lr times that gradient: its error too
                            noisy_step[k] = max(noisy_step[k], lr * ecn)
                        else:
                            fail("grad", f"{gk}: {msg}; torch float32 err {e32:.3g}")
                # PyTorch's SGD leaves a parameter without a gradient as it is (a named
                # output's head at --aux-weight 0), weight decay and all.
                newp = (t - lr * (tg + wd * t)).detach() if t.grad is not None else t.detach()
            else:  # running stats, updated in place by torch's train-mode forward
                newp = t.detach()
            nk = "new." + k
            if nk not in tres:
                fail("train_names", f"{nk} missing from {sorted(tnames)}")
                continue
            ok, msg = close(tres[nk], newp.numpy(), rtol=1e-3,
                            atol_scale=max(1.0, float(newp.abs().max())) * (lr if a in ("weight", "bias") else 1))
            if not ok and k in noisy_step:
                ok = float(np.abs(tres[nk] - newp.numpy()).max()) <= 1.5 * noisy_step[k] + 1e-6
            if not ok:
                fail("train_step", f"{nk}: {msg}")
    return problems, feats, text


# Layers PyTorch accepts that cnnc rejects on purpose, with the diagnostic code it must give.
DELIBERATE_REJECTS = []


def sweep_cases():
    """exhaustive single-layer cases (after a 1x1 conv so the layer's backward is exercised by the
    per-pixel loss): pooling, transposed conv, adaptive pooling, pad=same"""
    cases = []
    for kind in ("maxpool", "avgpool", "avgpool_nocount"):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    for ceil in (False, True):
                        for H in range(1, 9):
                            if kind == "avgpool_nocount" and p == 0:
                                continue  # the same as avgpool's
                            layer = kind.split("_")[0]
                            t = (f"{layer}({k}, stride={s}, pad={p}" + (", ceil=true" if ceil else "")
                                 + (", count_include_pad=false)" if kind == "avgpool_nocount" else ")"))
                            m = (nn.MaxPool2d(k, s, p, ceil_mode=ceil) if kind == "maxpool"
                                 else nn.AvgPool2d(k, s, p, ceil_mode=ceil,
                                                   count_include_pad=kind == "avgpool"))
                            cases.append(([1, H, H + 1], Leaf(layer, t, m, None, [kind, "sweep"] + (["ceil"] if ceil else []))))
    for k in range(1, 4):
        for s in range(1, 4):
            for d in range(1, 3):
                for p in range(0, 3):
                    for op in range(0, max(s, d)):
                        for H in (1, 2, 3):
                            t = f"convT(2, {k}, stride={s}, pad={p}, output_pad={op}, dilation={d})"
                            m = nn.ConvTranspose2d(2, 2, k, s, p, op, 1, True, d)
                            cases.append(([1, H, H + 1], Leaf("convT", t, m, m, ["convT", "sweep"])))
    for H in range(1, 9):
        for oh in range(1, 9):
            t = f"adaptive_avgpool([{oh}, {max(1, 9 - oh)}])"
            cases.append(([1, H, 9 - H], Leaf("adaptive_avgpool", t, nn.AdaptiveAvgPool2d((oh, max(1, 9 - oh))), None, ["adaptive", "sweep"])))
            t = f"adaptive_maxpool([{oh}, {max(1, 9 - oh)}])"
            cases.append(([1, H, 9 - H], Leaf("adaptive_maxpool", t, nn.AdaptiveMaxPool2d((oh, max(1, 9 - oh))), None, ["adaptive_max", "sweep"])))
    for k in range(1, 6):
        for d in range(1, 4):
            t = f"conv(2, [{k}, {6 - k}], dilation=[{d}, {4 - d}], pad=same)"
            m = nn.Conv2d(2, 2, (k, 6 - k), 1, "same", (d, 4 - d))
            cases.append(([1, 5, 6], Leaf("conv", t, m, m, ["conv", "same", "sweep"])))
    # torchvision's transforms.Normalize in the model (after the 1x1 conv's 2 channels): one
    # constant per channel or one for both.
    import torchvision.transforms as T
    for mean, std in (([0.485, -0.456], [0.229, 3.5]), ([0.286], [0.353]), ([2.0, 0.0], [1.0, 0.125])):
        one = lambda v: f"{v[0]}" if len(v) == 1 else f"[{', '.join(map(str, v))}]"
        t = f"normalize(mean={one(mean)}, std={one(std)})"
        cases.append(([1, 4, 5], Leaf("normalize", t, T.Normalize(mean, std), None, ["normalize", "sweep"])))
    # ConvNeXt's layer norm over the channels and its layer scale.
    for eps, affine in ((1e-6, True), (1e-5, False), (0.1, True)):
        m = LayerNorm2d(2, eps, affine)
        text = f"layernorm(eps={eps}, affine={str(affine).lower()})"
        cases.append(([1, 3, 4], Leaf("layernorm", text, m, m.ln if affine else None, ["layernorm", "sweep"])))
    for init in (1e-6, 0.5, -2.0):
        m = LayerScale(2, 3, init)
        cases.append(([1, 3, 4], Leaf("layer_scale", f"layer_scale({init})", m, m, ["layer_scale", "sweep"])))
    return cases


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "sweep":
        return sweep_main()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 250
    s0 = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    run_many([(seed, None) for seed in range(s0, s0 + n)], OUT)


def sweep_main():
    d = OUT + "/sweep"
    os.makedirs(d, exist_ok=True)
    jobs = []
    for i, (inshape, lf) in enumerate(sweep_cases()):
        torch.manual_seed(i)
        pre = nn.Conv2d(inshape[0], 2, 1)
        pre_lf = Leaf("conv", "conv(2, 1)", pre, pre, ["conv"])
        jobs.append((100000 + i, (inshape, [pre_lf, lf], False)))
    wrong = 0
    for i, (inshape, t) in enumerate(DELIBERATE_REJECTS):
        p = f"{d}/deliberate{i}.cnn"
        with open(p, "w") as f:
            f.write(f"model D(input: [{', '.join(map(str, inshape))}]) {{\n    conv(2, 1)\n    {t}\n}}\n")
        rc, so, se = cnnc("check", p, "--format", "json")
        if rc != 1 or "cnnc::shape::output_pad" not in so:
            wrong += 1
            print(f"{p}: expected cnnc::shape::output_pad, got rc={rc} {so[:300]}", flush=True)
    print(f"deliberate rejections: {len(DELIBERATE_REJECTS) - wrong} of {len(DELIBERATE_REJECTS)} as expected")
    run_many(jobs, d)


def run_many(jobs, dirs):
    stats = collections.Counter()
    featc = collections.Counter()
    allf = []
    for seed, given in jobs:
        if given is not None:
            try:
                y = given[1][0].mod.eval()(torch.zeros(1, *given[0]))
                y = given[1][1].mod.eval()(y)
                assert y.numel() > 0
            except Exception:
                # torch rejects: cnnc must too
                stats["reject_tests"] += 1
                p = f"{dirs}/n{seed}_rej.cnn"
                with open(p, "w") as f:
                    f.write(net_text(f"Rej{seed}", given[0], given[1]))
                rc, so, se = cnnc("check", p)
                if rc == 0:
                    print(f"seed {seed}: [cnnc_accepts_torch_rejects] {given[1][1].text} on {given[0]}", flush=True)
                    allf.append((seed, [("cnnc_accepts_torch_rejects", "")]))
                continue
        try:
            probs, feats, text = run_one(seed, stats, None, dirs, given)
        except Exception:
            probs, feats, text = [("harness", traceback.format_exc())], set(), ""
        stats["networks"] += 1
        for f in feats:
            featc[f] += 1
        if probs:
            allf.append((seed, probs))
            with open(f"{dirs}/fail_{seed}.txt", "w") as f:
                f.write(text + "\n")
                for k, m in probs:
                    f.write(f"[{k}] {m}\n")
            print(f"seed {seed}: " + "; ".join(f"[{k}] {m.splitlines()[0] if m else ''}" for k, m in probs), flush=True)
    print("stats:", dict(stats))
    print("features:", dict(sorted(featc.items())))
    kinds = collections.Counter(k for _, ps in allf for k, _ in ps)
    print("failures by kind:", dict(kinds), "in", len(allf), "networks")


if __name__ == "__main__":
    main()

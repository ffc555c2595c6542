"""Times, with the machine's PyTorch on a GPU, the ONNX formulations of convolution gradients
that cnnc's step graph uses (src/train/graph/backward.rs) against cuDNN's own backward, for
AlexNet's convolutions at batch 128 (a measurement aid, not run by CI):

    python benches/reference/conv_grad_forms.py

For each layer: the forward conv; the input gradient as ConvTranspose(dY, W); the weight
gradient as a Conv of x (C, N, H, W) by dY (M, N, oH, oW) with strides and dilations swapped;
PyTorch's autograd backward of the same conv (cuDNN's dgrad and wgrad kernels); and, for
strided convs, the weight gradient as im2col (a Conv with one-hot kernels, one group per input
channel) followed by an Einsum over the batch and the output positions.
cudnn.benchmark picks the fastest algorithm, as ONNX Runtime's exhaustive search does.
"""
import time
import torch
import torch.nn.functional as F

torch.backends.cudnn.benchmark = True
dev = torch.device("cuda")
# (N, C, H, M, k, stride, pad): models/alexnet.cnn's convolutions at batch 128, then
# models/resnet18.cnn's strided ones at batch 256.
LAYERS = [(128, 1, 224, 96, 11, 4, 1), (128, 96, 26, 256, 5, 1, 2), (128, 256, 12, 384, 3, 1, 1),
          (128, 384, 12, 384, 3, 1, 1), (128, 384, 12, 256, 3, 1, 1),
          (256, 1, 96, 64, 7, 2, 3), (256, 64, 24, 128, 3, 2, 1), (256, 64, 24, 128, 1, 2, 0),
          (256, 128, 12, 256, 3, 2, 1), (256, 256, 6, 512, 3, 2, 1)]


def im2col_weight_grad(x, dy, C, M, k, s, p):
    eye = torch.eye(k * k, device=x.device).reshape(k * k, 1, k, k).repeat(C, 1, 1, 1)
    patches = F.conv2d(x, eye, stride=s, padding=p, groups=C)
    n = x.shape[0]
    return torch.einsum("nmp,nkp->mk", dy.reshape(n, M, -1), patches.reshape(n, C * k * k, -1))


def ms(f, reps=20):
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps * 1e3


for tf32 in (True, False):
    torch.backends.cudnn.allow_tf32 = tf32
    print(f"TF32 {'on' if tf32 else 'off'} (cuDNN)")
    total = [0.0] * 4
    for N, C, H, M, k, s, p in LAYERS:
        x = torch.randn(N, C, H, H, device=dev, requires_grad=True)
        w = torch.randn(M, C, k, k, device=dev, requires_grad=True)
        y = F.conv2d(x, w, stride=s, padding=p)
        dy = torch.randn_like(y)
        oH = y.shape[2]
        op = H + 2 * p - ((oH - 1) * s + k)
        xt, dyt = x.detach().transpose(0, 1).contiguous(), dy.transpose(0, 1).contiguous()
        times = [
            ms(lambda: F.conv2d(x, w, stride=s, padding=p)),
            ms(lambda: F.conv_transpose2d(dy, w, stride=s, padding=p, output_padding=op)),
            ms(lambda: F.conv2d(xt, dyt, stride=1, padding=p, dilation=s)),
            ms(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True)),
        ]
        total = [a + b for a, b in zip(total, times)]
        extra = ""
        if s > 1:
            ref = torch.autograd.grad(y, w, dy, retain_graph=True)[0].reshape(M, -1)
            got = im2col_weight_grad(x.detach(), dy, C, M, k, s, p)
            err = ((got - ref).abs().max() / ref.abs().max()).item()
            extra = (f", weight grad as im2col+Einsum "
                     f"{ms(lambda: im2col_weight_grad(x.detach(), dy, C, M, k, s, p)):7.3f} ms "
                     f"(rel. diff {err:.1e})")
        print(f"  N{N} conv {C:>3}->{M:<3} k{k} s{s} {H}x{H}: forward {times[0]:7.3f} ms, "
              f"input grad as ConvTranspose {times[1]:7.3f} ms, weight grad as Conv "
              f"{times[2]:7.3f} ms, cuDNN backward (both) {times[3]:7.3f} ms{extra}", flush=True)
    print(f"  all: forward {total[0]:.3f} ms, cnnc's backward forms {total[1] + total[2]:.3f} ms, "
          f"cuDNN backward {total[3]:.3f} ms")

#!/usr/bin/env python3
"""Independent reference numbers for the networks in models/.

Pure Python, no torch. Each network is written the PyTorch way -- every layer with its
in_channels / in_features spelled out by hand, as in the d2l.ai notes -- and pushed through
the PyTorch size formulas on a symbolic single sample. For each network we record:

  output  the output shape without the batch dimension
  params  trainable parameters: conv/linear weights and biases, batchnorm gamma and beta
          (running mean/var are buffers, not parameters), layer norms' weight and bias,
          ConvNeXt's layer scale
  macs    multiply-accumulates, biases not counted:
            conv            output elements * in_channels/groups * kh * kw
            transposed conv input elements  * out_channels/groups * kh * kw
            linear          in_features * out_features (at each pixel, channels-last)
            everything else 0

This file deliberately shares no code or numbers with the .cnn files: it is a second,
independent description of the same networks. Every declared in_channels / in_features is
checked against the tensor that actually arrives, so a wrong hand-count fails loudly here.

Run:  python3 tests/reference/reference.py
      writes tests/reference/expected.json (models/*.cnn) and expected_valid.json
      (tests/fixtures/valid/*.cnn), both keyed by file stem.
"""

import json
import math
import os
import sys


# --------------------------------------------------------------------------------------
# Shapes and the PyTorch size formulas
# --------------------------------------------------------------------------------------

def _pair(v):
    if isinstance(v, (tuple, list)):
        assert len(v) == 2
        return tuple(v)
    return (v, v)


def conv_out(n, k, s, p, d):
    # torch.nn.Conv2d / MaxPool2d / AvgPool2d (floor mode)
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(n, k, s, p, ceil_mode):
    if not ceil_mode:
        return (n + 2 * p - (k - 1) - 1) // s + 1
    out = math.ceil((n + 2 * p - (k - 1) - 1) / s) + 1
    # PyTorch: the last window must start inside the input or left padding
    if (out - 1) * s >= n + p:
        out -= 1
    return out


def convT_out(n, k, s, p, op, d):
    # torch.nn.ConvTranspose2d
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


class Cost:
    def __init__(self):
        self.params = 0
        self.macs = 0


# --------------------------------------------------------------------------------------
# Modules: each has forward(shape, cost) -> shape. Shapes are tuples without the batch.
# --------------------------------------------------------------------------------------

class Module:
    def forward(self, x, c):
        raise NotImplementedError


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True):
        self.cin, self.cout = in_channels, out_channels
        self.k, self.s = _pair(kernel_size), _pair(stride)
        self.p, self.d = _pair(padding), _pair(dilation)
        self.g, self.bias = groups, bias
        assert self.cin % self.g == 0 and self.cout % self.g == 0

    def forward(self, x, c):
        C, H, W = x
        assert C == self.cin, f"Conv2d expects {self.cin} channels, got {C}"
        Ho = conv_out(H, self.k[0], self.s[0], self.p[0], self.d[0])
        Wo = conv_out(W, self.k[1], self.s[1], self.p[1], self.d[1])
        assert Ho > 0 and Wo > 0
        w = self.cout * (self.cin // self.g) * self.k[0] * self.k[1]
        c.params += w + (self.cout if self.bias else 0)
        c.macs += self.cout * Ho * Wo * (self.cin // self.g) * self.k[0] * self.k[1]
        return (self.cout, Ho, Wo)


class ConvTranspose2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1):
        self.cin, self.cout = in_channels, out_channels
        self.k, self.s = _pair(kernel_size), _pair(stride)
        self.p, self.op = _pair(padding), _pair(output_padding)
        self.d, self.g, self.bias = _pair(dilation), groups, bias

    def forward(self, x, c):
        C, H, W = x
        assert C == self.cin, f"ConvTranspose2d expects {self.cin} channels, got {C}"
        Ho = convT_out(H, self.k[0], self.s[0], self.p[0], self.op[0], self.d[0])
        Wo = convT_out(W, self.k[1], self.s[1], self.p[1], self.op[1], self.d[1])
        # weight shape in PyTorch: (in_channels, out_channels/groups, kh, kw)
        w = self.cin * (self.cout // self.g) * self.k[0] * self.k[1]
        c.params += w + (self.cout if self.bias else 0)
        c.macs += C * H * W * (self.cout // self.g) * self.k[0] * self.k[1]
        return (self.cout, Ho, Wo)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.k = _pair(kernel_size)
        self.s = _pair(stride if stride is not None else kernel_size)
        self.p = _pair(padding)
        self.ceil = ceil_mode

    def forward(self, x, c):
        C, H, W = x
        Ho = pool_out(H, self.k[0], self.s[0], self.p[0], self.ceil)
        Wo = pool_out(W, self.k[1], self.s[1], self.p[1], self.ceil)
        assert Ho > 0 and Wo > 0
        return (C, Ho, Wo)


class AvgPool2d(MaxPool2d):
    pass


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        self.o = _pair(output_size)

    def forward(self, x, c):
        return (x[0],) + self.o


class BatchNorm2d(Module):
    def __init__(self, num_features):
        self.n = num_features

    def forward(self, x, c):
        assert len(x) == 3 and x[0] == self.n, f"BatchNorm2d({self.n}) on {x}"
        c.params += 2 * self.n
        return x


class BatchNorm1d(Module):
    def __init__(self, num_features):
        self.n = num_features

    def forward(self, x, c):
        assert len(x) == 1 and x[0] == self.n, f"BatchNorm1d({self.n}) on {x}"
        c.params += 2 * self.n
        return x


class GroupNorm(Module):
    # nn.GroupNorm(num_groups, num_channels, affine=True): gamma and beta per channel
    def __init__(self, num_groups, num_channels, affine=True):
        self.g, self.n, self.affine = num_groups, num_channels, affine

    def forward(self, x, c):
        assert len(x) in (1, 3) and x[0] == self.n and self.n % self.g == 0, \
            f"GroupNorm({self.g}, {self.n}) on {x}"
        c.params += 2 * self.n if self.affine else 0
        return x


class InstanceNorm2d(Module):
    # nn.InstanceNorm2d(num_features, affine=False): PyTorch's default learns nothing
    def __init__(self, num_features, affine=False):
        self.n, self.affine = num_features, affine

    def forward(self, x, c):
        assert len(x) == 3 and x[0] == self.n, f"InstanceNorm2d({self.n}) on {x}"
        c.params += 2 * self.n if self.affine else 0
        return x


class LayerNorm(Module):
    # nn.LayerNorm(C): over the last dimension (the channels of a channels-last [H, W, C],
    # or a vector's features), weight and bias of C
    def __init__(self, normalized_shape, eps=1e-5):
        self.n = normalized_shape

    def forward(self, x, c):
        assert x[-1] == self.n, f"LayerNorm({self.n}) on {x}"
        c.params += 2 * self.n
        return x


class LayerNorm2d(Module):
    # torchvision's convnext.LayerNorm2d(C): nn.LayerNorm(C) between permutes to channels-last
    # and back, so each pixel is normalized over its C channels; weight and bias of C
    def __init__(self, num_channels, eps=1e-6):
        self.n = num_channels

    def forward(self, x, c):
        assert len(x) == 3 and x[0] == self.n, f"LayerNorm2d({self.n}) on {x}"
        c.params += 2 * self.n
        return x


class Permute(Module):
    # torchvision.ops.Permute(dims), dims including the batch (0), which stays first
    def __init__(self, dims):
        assert dims[0] == 0
        self.dims = dims

    def forward(self, x, c):
        return tuple(x[d - 1] for d in self.dims[1:])


class _Elementwise(Module):
    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x, c):
        return x


class ReLU(_Elementwise):
    pass


class Sigmoid(_Elementwise):
    pass


class Tanh(_Elementwise):
    pass


class Dropout(_Elementwise):
    pass


class Upsample(Module):
    # nn.Upsample(scale_factor=s, mode=...): H*sh, W*sw whatever the mode, no parameters
    def __init__(self, scale_factor, mode="nearest", align_corners=None):
        self.s = scale_factor if isinstance(scale_factor, tuple) else (scale_factor,) * 2

    def forward(self, x, c):
        return (x[0], x[1] * self.s[0], x[2] * self.s[1])


class PixelShuffle(Module):
    # nn.PixelShuffle(r): [C*r*r, H, W] -> [C, H*r, W*r], no parameters
    def __init__(self, upscale_factor):
        self.r = upscale_factor

    def forward(self, x, c):
        assert x[0] % (self.r * self.r) == 0, f"PixelShuffle({self.r}) of {x}"
        return (x[0] // (self.r * self.r), x[1] * self.r, x[2] * self.r)


class Flatten(Module):
    def forward(self, x, c):
        assert len(x) == 3
        return (x[0] * x[1] * x[2],)


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        self.i, self.o, self.bias = in_features, out_features, bias

    def forward(self, x, c):
        assert x == (self.i,), f"Linear expects ({self.i},), got {x}"
        c.params += self.i * self.o + (self.o if self.bias else 0)
        c.macs += self.i * self.o
        return (self.o,)


class ChannelsLastLinear(Linear):
    # nn.Linear on a channels-last [H, W, C] tensor (torchvision's CNBlock): the same weight
    # and bias, applied at each of the H * W pixels
    def forward(self, x, c):
        assert len(x) == 3 and x[-1] == self.i, f"Linear({self.i}) on channels-last {x}"
        c.params += self.i * self.o + (self.o if self.bias else 0)
        c.macs += x[0] * x[1] * self.i * self.o
        return x[:-1] + (self.o,)


class ZeroPad2d(Module):
    # PyTorch order: (left, right, top, bottom)
    def __init__(self, padding):
        self.l, self.r, self.t, self.b = padding

    def forward(self, x, c):
        C, H, W = x
        return (C, H + self.t + self.b, W + self.l + self.r)


class ReflectionPad2d(ZeroPad2d):
    # The same sizes; an int pads all four sides.
    def __init__(self, padding):
        if isinstance(padding, int):
            padding = (padding,) * 4
        super().__init__(padding)


class Softmax(_Elementwise):
    pass


class LeakyReLU(_Elementwise):
    pass


class ELU(_Elementwise):
    pass


class SiLU(_Elementwise):
    pass


class GELU(_Elementwise):
    pass


class ReLU6(_Elementwise):
    pass


class Hardsigmoid(_Elementwise):
    pass


class Hardswish(_Elementwise):
    pass


class Sequential(Module):
    def __init__(self, *mods):
        self.mods = mods

    def forward(self, x, c):
        for m in self.mods:
            x = m.forward(x, c)
        return x


# --------------------------------------------------------------------------------------
# The networks, as the d2l.ai notes (PyTorch) define them
# --------------------------------------------------------------------------------------

def lenet():
    # d2l 7.6: LeNet with padding 2 on the first conv, sigmoid, average pooling
    return Sequential(
        Conv2d(1, 6, kernel_size=5, padding=2), Sigmoid(),
        AvgPool2d(kernel_size=2, stride=2),
        Conv2d(6, 16, kernel_size=5), Sigmoid(),
        AvgPool2d(kernel_size=2, stride=2),
        Flatten(),
        Linear(16 * 5 * 5, 120), Sigmoid(),
        Linear(120, 84), Sigmoid(),
        Linear(84, 10))


def lenet_nopad_maxpool():
    # LeNet without the padding on the first conv, max pooling, still sigmoid
    return Sequential(
        Conv2d(1, 6, kernel_size=5), Sigmoid(),
        MaxPool2d(kernel_size=2, stride=2),
        Conv2d(6, 16, kernel_size=5), Sigmoid(),
        MaxPool2d(kernel_size=2, stride=2),
        Flatten(),
        Linear(16 * 4 * 4, 120), Sigmoid(),
        Linear(120, 84), Sigmoid(),
        Linear(84, 10))


def lenet_bn():
    # d2l 8.5 (concise BatchNorm LeNet): no padding, BN after each conv and hidden linear
    return Sequential(
        Conv2d(1, 6, kernel_size=5), BatchNorm2d(6), Sigmoid(),
        AvgPool2d(kernel_size=2, stride=2),
        Conv2d(6, 16, kernel_size=5), BatchNorm2d(16), Sigmoid(),
        AvgPool2d(kernel_size=2, stride=2), Flatten(),
        Linear(256, 120), BatchNorm1d(120), Sigmoid(),
        Linear(120, 84), BatchNorm1d(84), Sigmoid(),
        Linear(84, 10))


def alexnet():
    # d2l 8.1, 1-channel Fashion-MNIST resized to 224
    return Sequential(
        Conv2d(1, 96, kernel_size=11, stride=4, padding=1), ReLU(),
        MaxPool2d(kernel_size=3, stride=2),
        Conv2d(96, 256, kernel_size=5, padding=2), ReLU(),
        MaxPool2d(kernel_size=3, stride=2),
        Conv2d(256, 384, kernel_size=3, padding=1), ReLU(),
        Conv2d(384, 384, kernel_size=3, padding=1), ReLU(),
        Conv2d(384, 256, kernel_size=3, padding=1), ReLU(),
        MaxPool2d(kernel_size=3, stride=2), Flatten(),
        Linear(6400, 4096), ReLU(), Dropout(p=0.5),
        Linear(4096, 4096), ReLU(), Dropout(p=0.5),
        Linear(4096, 10))


def vgg11():
    # d2l 8.2
    def vgg_block(num_convs, in_channels, out_channels):
        layers = []
        for _ in range(num_convs):
            layers.append(Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            layers.append(ReLU())
            in_channels = out_channels
        layers.append(MaxPool2d(kernel_size=2, stride=2))
        return Sequential(*layers)

    conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    blks, in_channels = [], 1
    for (num_convs, out_channels) in conv_arch:
        blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return Sequential(
        *blks, Flatten(),
        Linear(out_channels * 7 * 7, 4096), ReLU(), Dropout(0.5),
        Linear(4096, 4096), ReLU(), Dropout(0.5),
        Linear(4096, 10))


def nin():
    # d2l 8.3
    def nin_block(in_channels, out_channels, kernel_size, strides, padding):
        return Sequential(
            Conv2d(in_channels, out_channels, kernel_size, strides, padding), ReLU(),
            Conv2d(out_channels, out_channels, kernel_size=1), ReLU(),
            Conv2d(out_channels, out_channels, kernel_size=1), ReLU())

    return Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        MaxPool2d(3, stride=2),
        Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        AdaptiveAvgPool2d((1, 1)),
        Flatten())


class Inception(Module):
    # d2l 8.4
    def __init__(self, in_channels, c1, c2, c3, c4):
        self.p1 = Sequential(Conv2d(in_channels, c1, kernel_size=1), ReLU())
        self.p2 = Sequential(Conv2d(in_channels, c2[0], kernel_size=1), ReLU(),
                             Conv2d(c2[0], c2[1], kernel_size=3, padding=1), ReLU())
        self.p3 = Sequential(Conv2d(in_channels, c3[0], kernel_size=1), ReLU(),
                             Conv2d(c3[0], c3[1], kernel_size=5, padding=2), ReLU())
        self.p4 = Sequential(MaxPool2d(kernel_size=3, stride=1, padding=1),
                             Conv2d(in_channels, c4, kernel_size=1), ReLU())

    def forward(self, x, c):
        outs = [p.forward(x, c) for p in (self.p1, self.p2, self.p3, self.p4)]
        assert all(o[1:] == outs[0][1:] for o in outs)
        return (sum(o[0] for o in outs),) + outs[0][1:]


def googlenet():
    b1 = Sequential(Conv2d(1, 64, kernel_size=7, stride=2, padding=3), ReLU(),
                    MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = Sequential(Conv2d(64, 64, kernel_size=1), ReLU(),
                    Conv2d(64, 192, kernel_size=3, padding=1), ReLU(),
                    MaxPool2d(kernel_size=3, stride=2, padding=1))
    b3 = Sequential(Inception(192, 64, (96, 128), (16, 32), 32),
                    Inception(256, 128, (128, 192), (32, 96), 64),
                    MaxPool2d(kernel_size=3, stride=2, padding=1))
    b4 = Sequential(Inception(480, 192, (96, 208), (16, 48), 64),
                    Inception(512, 160, (112, 224), (24, 64), 64),
                    Inception(512, 128, (128, 256), (24, 64), 64),
                    Inception(512, 112, (144, 288), (32, 64), 64),
                    Inception(528, 256, (160, 320), (32, 128), 128),
                    MaxPool2d(kernel_size=3, stride=2, padding=1))
    b5 = Sequential(Inception(832, 256, (160, 320), (32, 128), 128),
                    Inception(832, 384, (192, 384), (48, 128), 128),
                    AdaptiveAvgPool2d((1, 1)), Flatten())
    return Sequential(b1, b2, b3, b4, b5, Linear(1024, 10))


class Tap(Module):
    # A second output (cnnc's `output NAME { ... }`): its layers are computed and counted,
    # and the tensor goes on unchanged.
    def __init__(self, *mods):
        self.body = Sequential(*mods)
        self.shape = None

    def forward(self, x, c):
        self.shape = self.body.forward(x, c)
        return x


class TorchvisionInception(Module):
    # torchvision's googlenet.Inception: BasicConv2d branches; its "5x5" branch is 3x3, and
    # the pool branch's max pool rounds up
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        self.branches = (
            basic_conv2d(in_channels, ch1x1, kernel_size=1),
            Sequential(basic_conv2d(in_channels, ch3x3red, kernel_size=1),
                       basic_conv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)),
            Sequential(basic_conv2d(in_channels, ch5x5red, kernel_size=1),
                       basic_conv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)),
            Sequential(MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                       basic_conv2d(in_channels, pool_proj, kernel_size=1)))

    def forward(self, x, c):
        outs = [b.forward(x, c) for b in self.branches]
        assert all(o[1:] == outs[0][1:] for o in outs)
        return (sum(o[0] for o in outs),) + outs[0][1:]


def googlenet_aux():
    # torchvision.models.googlenet(aux_logits=True, transform_input=False); InceptionAux:
    # adaptive average pool to 4x4, BasicConv2d(in, 128, 1), fc1 2048 -> 1024, ReLU,
    # dropout, fc2 1024 -> 1000
    def aux(in_channels):
        return Tap(AdaptiveAvgPool2d((4, 4)), basic_conv2d(in_channels, 128, kernel_size=1),
                   Flatten(), Linear(2048, 1024), ReLU(), Dropout(0.7), Linear(1024, 1000))
    return Sequential(
        basic_conv2d(3, 64, kernel_size=7, stride=2, padding=3),
        MaxPool2d(3, stride=2, ceil_mode=True),
        basic_conv2d(64, 64, kernel_size=1),
        basic_conv2d(64, 192, kernel_size=3, padding=1),
        MaxPool2d(3, stride=2, ceil_mode=True),
        TorchvisionInception(192, 64, 96, 128, 16, 32, 32),
        TorchvisionInception(256, 128, 128, 192, 32, 96, 64),
        MaxPool2d(3, stride=2, ceil_mode=True),
        TorchvisionInception(480, 192, 96, 208, 16, 48, 64),
        aux(512),
        TorchvisionInception(512, 160, 112, 224, 24, 64, 64),
        TorchvisionInception(512, 128, 128, 256, 24, 64, 64),
        TorchvisionInception(512, 112, 144, 288, 32, 64, 64),
        aux(528),
        TorchvisionInception(528, 256, 160, 320, 32, 128, 128),
        MaxPool2d(2, stride=2, ceil_mode=True),
        TorchvisionInception(832, 256, 160, 320, 32, 128, 128),
        TorchvisionInception(832, 384, 192, 384, 48, 128, 128),
        AdaptiveAvgPool2d((1, 1)), Flatten(), Dropout(0.2), Linear(1024, 1000))


class Residual(Module):
    # d2l 8.6: the projection shortcut is a bare 1x1 conv (with bias, no batchnorm)
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        self.conv1 = Conv2d(input_channels, num_channels, kernel_size=3, padding=1,
                            stride=strides)
        self.conv2 = Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = (Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
                      if use_1x1conv else None)
        self.bn1 = BatchNorm2d(num_channels)
        self.bn2 = BatchNorm2d(num_channels)

    def forward(self, x, c):
        y = self.bn1.forward(self.conv1.forward(x, c), c)
        y = self.bn2.forward(self.conv2.forward(y, c), c)
        sc = self.conv3.forward(x, c) if self.conv3 else x
        assert sc == y, f"residual mismatch {sc} vs {y}"
        return y


def resnet18():
    def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(input_channels, num_channels, use_1x1conv=True,
                                    strides=2))
            else:
                blk.append(Residual(num_channels, num_channels))
        return Sequential(*blk)

    b1 = Sequential(Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                    BatchNorm2d(64), ReLU(),
                    MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = resnet_block(64, 64, 2, first_block=True)
    b3 = resnet_block(64, 128, 2)
    b4 = resnet_block(128, 256, 2)
    b5 = resnet_block(256, 512, 2)
    return Sequential(b1, b2, b3, b4, b5, AdaptiveAvgPool2d((1, 1)), Flatten(),
                      Linear(512, 10))


def densenet():
    # d2l 8.7
    def conv_block(input_channels, num_channels):
        return Sequential(BatchNorm2d(input_channels), ReLU(),
                          Conv2d(input_channels, num_channels, kernel_size=3, padding=1))

    class DenseBlock(Module):
        def __init__(self, num_convs, input_channels, num_channels):
            self.net = [conv_block(num_channels * i + input_channels, num_channels)
                        for i in range(num_convs)]

        def forward(self, x, c):
            for blk in self.net:
                y = blk.forward(x, c)
                assert y[1:] == x[1:]
                x = (x[0] + y[0],) + x[1:]   # torch.cat((X, Y), dim=1)
            return x

    def transition_block(input_channels, num_channels):
        return Sequential(BatchNorm2d(input_channels), ReLU(),
                          Conv2d(input_channels, num_channels, kernel_size=1),
                          AvgPool2d(kernel_size=2, stride=2))

    b1 = Sequential(Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                    BatchNorm2d(64), ReLU(),
                    MaxPool2d(kernel_size=3, stride=2, padding=1))
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return Sequential(b1, *blks, BatchNorm2d(num_channels), ReLU(),
                      AdaptiveAvgPool2d((1, 1)), Flatten(), Linear(num_channels, 10))


def simple_cnn():
    # MNIST SimpleCNN: two padded 3x3 conv + relu + 2x2 max-pool stages, one hidden linear
    return Sequential(
        Conv2d(1, 32, kernel_size=3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(32, 64, kernel_size=3, padding=1), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(64 * 7 * 7, 128), ReLU(),
        Linear(128, 10))


class UNet(Module):
    # Ronneberger et al. 2015, Fig. 1: unpadded convs, copy-and-crop skips
    def __init__(self):
        def double_conv(cin, cout):
            return Sequential(Conv2d(cin, cout, 3), ReLU(), Conv2d(cout, cout, 3), ReLU())

        self.down1 = double_conv(1, 64)
        self.down2 = double_conv(64, 128)
        self.down3 = double_conv(128, 256)
        self.down4 = double_conv(256, 512)
        self.bottom = double_conv(512, 1024)
        self.pool = MaxPool2d(2)
        self.up4 = ConvTranspose2d(1024, 512, 2, stride=2)
        self.dec4 = double_conv(1024, 512)
        self.up3 = ConvTranspose2d(512, 256, 2, stride=2)
        self.dec3 = double_conv(512, 256)
        self.up2 = ConvTranspose2d(256, 128, 2, stride=2)
        self.dec2 = double_conv(256, 128)
        self.up1 = ConvTranspose2d(128, 64, 2, stride=2)
        self.dec1 = double_conv(128, 64)
        self.head = Conv2d(64, 2, 1)

    @staticmethod
    def crop_cat(skip, up):
        # center-crop the skip to the upsampled size, then torch.cat((skip, up), dim=1)
        assert skip[1] >= up[1] and skip[2] >= up[2]
        return (skip[0] + up[0],) + up[1:]

    def forward(self, x, c):
        e1 = self.down1.forward(x, c)
        e2 = self.down2.forward(self.pool.forward(e1, c), c)
        e3 = self.down3.forward(self.pool.forward(e2, c), c)
        e4 = self.down4.forward(self.pool.forward(e3, c), c)
        b = self.bottom.forward(self.pool.forward(e4, c), c)
        d = self.dec4.forward(self.crop_cat(e4, self.up4.forward(b, c)), c)
        d = self.dec3.forward(self.crop_cat(e3, self.up3.forward(d, c)), c)
        d = self.dec2.forward(self.crop_cat(e2, self.up2.forward(d, c)), c)
        d = self.dec1.forward(self.crop_cat(e1, self.up1.forward(d, c)), c)
        return self.head.forward(d, c)


def unet():
    return UNet()


class UNetBilinear(Module):
    # milesial/Pytorch-UNet, UNet(n_channels=3, n_classes=2, bilinear=True): padded convs
    # without bias + BatchNorm2d + ReLU, bilinear Upsample(2, align_corners=True), the
    # deepest stage at 1024 // 2 channels, each Up's DoubleConv(in, out, mid=in // 2)
    def __init__(self):
        def double_conv(cin, cout, mid=None):
            mid = mid or cout
            return Sequential(Conv2d(cin, mid, 3, padding=1, bias=False), BatchNorm2d(mid), ReLU(),
                              Conv2d(mid, cout, 3, padding=1, bias=False), BatchNorm2d(cout), ReLU())

        self.inc = double_conv(3, 64)
        self.downs = [Sequential(MaxPool2d(2), double_conv(cin, cout))
                      for cin, cout in [(64, 128), (128, 256), (256, 512), (512, 512)]]
        self.up = Upsample(2, mode="bilinear", align_corners=True)
        self.ups = [double_conv(1024, 256, 512), double_conv(512, 128, 256),
                    double_conv(256, 64, 128), double_conv(128, 64, 64)]
        self.outc = Conv2d(64, 2, 1)

    def forward(self, x, c):
        skips = [self.inc.forward(x, c)]
        for down in self.downs:
            skips.append(down.forward(skips[-1], c))
        y = skips.pop()
        for conv in self.ups:
            y = self.up.forward(y, c)
            skip = skips.pop()
            assert skip[1:] == y[1:], (skip, y)        # no padding needed
            y = conv.forward((skip[0] + y[0],) + y[1:], c)   # torch.cat([x2, x1], dim=1)
        return self.outc.forward(y, c)


def tconv_decoder():
    # [64, 7, 7] -> [1, 28, 28]: two stride-2 transposed convs, the second with
    # output_padding=1, then a 3x3 conv to one channel and a sigmoid
    return Sequential(
        ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1),     # 7 -> 14
        BatchNorm2d(32), ReLU(),
        ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1,
                        output_padding=1),                                # 14 -> 28
        BatchNorm2d(16), ReLU(),
        Conv2d(16, 1, kernel_size=3, padding=1),
        Sigmoid())


def cyclegan_resnet_generator():
    # junyanz/pytorch-CycleGAN-and-pix2pix ResnetGenerator(3, 3, ngf=64, BatchNorm2d,
    # n_blocks=9): use_bias is False with batch norm, except the last conv's.
    class ResnetBlock(Module):
        # x + conv_block(x)
        def __init__(self, d):
            self.body = Sequential(
                ReflectionPad2d(1), Conv2d(d, d, 3, bias=False), BatchNorm2d(d), ReLU(),
                ReflectionPad2d(1), Conv2d(d, d, 3, bias=False), BatchNorm2d(d))

        def forward(self, x, c):
            y = self.body.forward(x, c)
            assert y == x, (x, y)
            return y

    def block(d):
        return ResnetBlock(d)
    layers = [ReflectionPad2d(3), Conv2d(3, 64, 7, bias=False), BatchNorm2d(64), ReLU(),
              Conv2d(64, 128, 3, stride=2, padding=1, bias=False), BatchNorm2d(128), ReLU(),
              Conv2d(128, 256, 3, stride=2, padding=1, bias=False), BatchNorm2d(256), ReLU()]
    layers += [block(256) for _ in range(9)]
    layers += [ConvTranspose2d(256, 128, 3, stride=2, padding=1, output_padding=1, bias=False),
               BatchNorm2d(128), ReLU(),
               ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1, bias=False),
               BatchNorm2d(64), ReLU(),
               ReflectionPad2d(3), Conv2d(64, 3, 7), Tanh()]
    return Sequential(*layers)


def hdc():
    # Hybrid dilated convolution (Wang et al. 2018): rates 1, 2, 3 with padding = rate,
    # on a CIFAR-sized input, two groups, then a global-average-pool classifier
    def hdc_group(cin, c):
        return Sequential(
            Conv2d(cin, c, 3, padding=1, dilation=1), BatchNorm2d(c), ReLU(),
            Conv2d(c, c, 3, padding=2, dilation=2), BatchNorm2d(c), ReLU(),
            Conv2d(c, c, 3, padding=3, dilation=3), BatchNorm2d(c), ReLU())

    return Sequential(
        Conv2d(3, 32, kernel_size=3, padding=1), BatchNorm2d(32), ReLU(),
        hdc_group(32, 32),
        MaxPool2d(2),
        hdc_group(32, 64),
        AdaptiveAvgPool2d((1, 1)), Flatten(),
        Linear(64, 10))


class MobileNetV2Block(Module):
    # torchvision's InvertedResidual: expand (if t != 1), depthwise, project; the skip only
    # when stride is 1 and the channels are kept.
    def __init__(self, inp, oup, stride, expand_ratio):
        hidden = inp * expand_ratio
        layers = []
        if expand_ratio != 1:
            layers += [Conv2d(inp, hidden, 1, bias=False), BatchNorm2d(hidden), ReLU6()]
        layers += [Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden,
                          bias=False), BatchNorm2d(hidden), ReLU6(),
                   Conv2d(hidden, oup, 1, bias=False), BatchNorm2d(oup)]
        self.conv = Sequential(*layers)
        self.use_res_connect = stride == 1 and inp == oup

    def forward(self, x, c):
        y = self.conv.forward(x, c)
        if self.use_res_connect:
            assert y == x, f"residual mismatch {y} vs {x}"
        return y


def mobilenet_v2():
    # torchvision.models.mobilenet_v2(num_classes=1000), width_mult 1.0
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    features = [Conv2d(3, 32, 3, stride=2, padding=1, bias=False), BatchNorm2d(32), ReLU6()]
    inp = 32
    for t, ch, n, s in settings:
        for i in range(n):
            features.append(MobileNetV2Block(inp, ch, s if i == 0 else 1, t))
            inp = ch
    features += [Conv2d(inp, 1280, 1, bias=False), BatchNorm2d(1280), ReLU6()]
    return Sequential(*features, AdaptiveAvgPool2d((1, 1)), Flatten(), Dropout(0.2),
                      Linear(1280, 1000))


class Fire(Module):
    # torchvision's squeezenet.Fire: squeeze 1x1, then 1x1 and 3x3 expansions concatenated.
    def __init__(self, inplanes, squeeze, expand1x1, expand3x3):
        self.squeeze = Sequential(Conv2d(inplanes, squeeze, 1), ReLU())
        self.e1 = Sequential(Conv2d(squeeze, expand1x1, 1), ReLU())
        self.e3 = Sequential(Conv2d(squeeze, expand3x3, 3, padding=1), ReLU())

    def forward(self, x, c):
        s = self.squeeze.forward(x, c)
        a, b = self.e1.forward(s, c), self.e3.forward(s, c)
        assert a[1:] == b[1:]
        return (a[0] + b[0],) + a[1:]


def squeezenet1_1():
    # torchvision.models.squeezenet1_1(num_classes=1000)
    return Sequential(
        Conv2d(3, 64, 3, stride=2), ReLU(),
        MaxPool2d(3, stride=2, ceil_mode=True),
        Fire(64, 16, 64, 64), Fire(128, 16, 64, 64),
        MaxPool2d(3, stride=2, ceil_mode=True),
        Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
        MaxPool2d(3, stride=2, ceil_mode=True),
        Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
        Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
        Dropout(0.5), Conv2d(512, 1000, 1), ReLU(), AdaptiveAvgPool2d((1, 1)), Flatten())


class Bottleneck(Module):
    # torchvision's resnet.Bottleneck (v1.5): the stride on the 3x3, width from groups.
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, groups=1, base_width=64, dilation=1):
        width = int(planes * (base_width / 64.0)) * groups
        self.body = Sequential(
            Conv2d(inplanes, width, 1, bias=False), BatchNorm2d(width), ReLU(),
            Conv2d(width, width, 3, stride=stride, padding=dilation, dilation=dilation,
                   groups=groups, bias=False),
            BatchNorm2d(width), ReLU(),
            Conv2d(width, planes * 4, 1, bias=False), BatchNorm2d(planes * 4))
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = Sequential(
                Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                BatchNorm2d(planes * 4))

    def forward(self, x, c):
        y = self.body.forward(x, c)
        sc = self.downsample.forward(x, c) if self.downsample else x
        assert sc == y, f"residual mismatch {sc} vs {y}"
        return y


def resnext50_32x4d():
    # torchvision.models.resnext50_32x4d: ResNet(Bottleneck, [3, 4, 6, 3], groups=32,
    # width_per_group=4)
    layers = [Conv2d(3, 64, 7, stride=2, padding=3, bias=False), BatchNorm2d(64), ReLU(),
              MaxPool2d(3, stride=2, padding=1)]
    inplanes = 64
    for planes, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            layers.append(Bottleneck(inplanes, planes, stride if i == 0 else 1, 32, 4))
            inplanes = planes * 4
    return Sequential(*layers, AdaptiveAvgPool2d((1, 1)), Flatten(), Linear(2048, 1000))


class DeepLabV3(Module):
    # torchvision.models.segmentation.deeplabv3_resnet50(num_classes=21, aux_loss=False):
    # resnet50(replace_stride_with_dilation=[False, True, True]) -- a dilated stage's first
    # block keeps the previous dilation --, DeepLabHead(2048, 21) = ASPP(2048, [12, 24, 36])
    # (1x1, three atrous 3x3, image pooling; cat; 1x1 project, dropout), 3x3 conv, BN, ReLU,
    # 1x1 conv; F.interpolate to the input size, bilinear
    def __init__(self):
        layers = [Conv2d(3, 64, 7, stride=2, padding=3, bias=False), BatchNorm2d(64), ReLU(),
                  MaxPool2d(3, stride=2, padding=1)]
        inplanes, dilation = 64, 1
        for planes, blocks, stride, dilate in [(64, 3, 1, False), (128, 4, 2, False),
                                               (256, 6, 2, True), (512, 3, 2, True)]:
            previous = dilation
            if dilate:
                dilation, stride = dilation * stride, 1
            for i in range(blocks):
                layers.append(Bottleneck(inplanes, planes, stride if i == 0 else 1,
                                         dilation=previous if i == 0 else dilation))
                inplanes = planes * 4
        self.backbone = Sequential(*layers)

        def cbr(cin, k, d=1):
            return Sequential(Conv2d(cin, 256, k, padding=d if k == 3 else 0, dilation=d,
                                     bias=False), BatchNorm2d(256), ReLU())

        self.branches = [cbr(2048, 1), cbr(2048, 3, 12), cbr(2048, 3, 24), cbr(2048, 3, 36)]
        self.pool = Sequential(AdaptiveAvgPool2d(1), cbr(2048, 1))
        self.head = Sequential(cbr(5 * 256, 1), Dropout(0.5), cbr(256, 3, 1),
                               Conv2d(256, 21, 1))

    def forward(self, x, c):
        f = self.backbone.forward(x, c)
        outs = [b.forward(f, c) for b in self.branches]
        p = self.pool.forward(f, c)
        outs.append(Upsample((f[1] // p[1], f[2] // p[2]), mode="bilinear").forward(p, c))
        assert all(o == outs[0] for o in outs), outs
        y = self.head.forward((sum(o[0] for o in outs),) + f[1:], c)
        return Upsample((x[1] // y[1], x[2] // y[2]), mode="bilinear").forward(y, c)


class MBConv(Module):
    # torchvision's efficientnet.MBConv: expand (if t != 1), depthwise k x k, squeeze and
    # excitation to max(1, cin // 4), project; the skip only when stride is 1 and the
    # channels are kept (stochastic depth is a training-time drop, no shape or weight).
    def __init__(self, cin, cout, t, k, stride):
        hidden = cin * t
        layers = []
        if hidden != cin:
            layers += [Conv2d(cin, hidden, 1, bias=False), BatchNorm2d(hidden), SiLU()]
        layers += [Conv2d(hidden, hidden, k, stride=stride, padding=(k - 1) // 2,
                          groups=hidden, bias=False), BatchNorm2d(hidden), SiLU(),
                   SqueezeExcitation(hidden, max(1, cin // 4), SiLU, Sigmoid),
                   Conv2d(hidden, cout, 1, bias=False), BatchNorm2d(cout)]
        self.block = Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x, c):
        y = self.block.forward(x, c)
        if self.use_res_connect:
            assert y == x, f"residual mismatch {y} vs {x}"
        return y


def efficientnet_b0():
    # torchvision.models.efficientnet_b0(num_classes=1000): (t, k, stride, cin, cout, n)
    settings = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
                (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
                (6, 3, 1, 192, 320, 1)]
    features = [Conv2d(3, 32, 3, stride=2, padding=1, bias=False), BatchNorm2d(32), SiLU()]
    for t, k, s, cin, cout, n in settings:
        for i in range(n):
            features.append(MBConv(cin if i == 0 else cout, cout, t, k, s if i == 0 else 1))
    features += [Conv2d(320, 1280, 1, bias=False), BatchNorm2d(1280), SiLU()]
    return Sequential(*features, AdaptiveAvgPool2d(1), Flatten(), Dropout(0.2),
                      Linear(1280, 1000))


class ShuffleV2Block(Module):
    # torchvision's shufflenetv2.InvertedResidual: stride 1 splits x in halves (x.chunk(2,
    # dim=1)), keeps one and runs branch2 on the other; stride 2 runs branch1 and branch2 on
    # all of x; then torch.cat and channel_shuffle(out, 2), which keep the shape.
    def __init__(self, inp, oup, stride):
        bf = oup // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = Sequential(
                Conv2d(inp, inp, 3, stride=stride, padding=1, groups=inp, bias=False),
                BatchNorm2d(inp),
                Conv2d(inp, bf, 1, bias=False), BatchNorm2d(bf), ReLU())
        self.branch2 = Sequential(
            Conv2d(inp if stride > 1 else bf, bf, 1, bias=False), BatchNorm2d(bf), ReLU(),
            Conv2d(bf, bf, 3, stride=stride, padding=1, groups=bf, bias=False),
            BatchNorm2d(bf),
            Conv2d(bf, bf, 1, bias=False), BatchNorm2d(bf), ReLU())

    def forward(self, x, c):
        C, H, W = x
        if self.stride == 1:
            assert C % 2 == 0
            half = (C // 2, H, W)
            y2 = self.branch2.forward(half, c)
            assert y2[1:] == half[1:]
            return (half[0] + y2[0],) + y2[1:]
        y1 = self.branch1.forward(x, c)
        y2 = self.branch2.forward(x, c)
        assert y1[1:] == y2[1:]
        return (y1[0] + y2[0],) + y1[1:]


def shufflenet_v2():
    # torchvision.models.shufflenet_v2_x1_0(num_classes=1000)
    stages, inp = [], 24
    for oup, repeats in [(116, 4), (232, 8), (464, 4)]:
        stages.append(ShuffleV2Block(inp, oup, 2))
        stages += [ShuffleV2Block(oup, oup, 1) for _ in range(repeats - 1)]
        inp = oup
    return Sequential(
        Conv2d(3, 24, 3, stride=2, padding=1, bias=False), BatchNorm2d(24), ReLU(),
        MaxPool2d(3, stride=2, padding=1),
        *stages,
        Conv2d(464, 1024, 1, bias=False), BatchNorm2d(1024), ReLU(),
        AdaptiveAvgPool2d(1), Flatten(), Linear(1024, 1000))


def _make_divisible(v, divisor, min_value=None):
    # torchvision.models._utils._make_divisible: the nearest multiple of divisor (at least
    # min_value), one step up where rounding down lost more than 10 %
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class MobileNetV3Block(MobileNetV2Block):
    # torchvision's mobilenetv3.InvertedResidual: expand (if the expanded width differs),
    # depthwise k x k, squeeze and excitation to _make_divisible(exp // 4, 8) with a ReLU and
    # a Hardsigmoid gate, project; Hardswish or ReLU; the skip only when stride is 1 and the
    # channels are kept.
    def __init__(self, cin, k, exp, cout, use_se, use_hs, stride):
        act = Hardswish if use_hs else ReLU
        layers = []
        if exp != cin:
            layers += [Conv2d(cin, exp, 1, bias=False), BatchNorm2d(exp), act()]
        layers += [Conv2d(exp, exp, k, stride=stride, padding=(k - 1) // 2, groups=exp,
                          bias=False), BatchNorm2d(exp), act()]
        if use_se:
            layers.append(SqueezeExcitation(exp, _make_divisible(exp // 4, 8), ReLU,
                                            Hardsigmoid))
        layers += [Conv2d(exp, cout, 1, bias=False), BatchNorm2d(cout)]
        # MobileNetV2Block's forward: the layers, and the skip's shape check.
        self.conv = Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout


def mobilenet_v3_small():
    # torchvision.models.mobilenet_v3_small(num_classes=1000), width_mult 1.0:
    # bneck_conf(input_channels, kernel, expanded_channels, out_channels, use_se, activation,
    # stride, dilation) as _mobilenet_v3_conf lists them; BatchNorm eps 0.001 (no weights).
    setting = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2),
               (24, 3, 88, 24, False, "RE", 1), (24, 5, 96, 40, True, "HS", 2),
               (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
               (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
               (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1),
               (96, 5, 576, 96, True, "HS", 1)]
    cfg = [(_make_divisible(i, 8), k, _make_divisible(e, 8), _make_divisible(o, 8), se,
            act == "HS", s) for i, k, e, o, se, act, s in setting]
    last_channel = _make_divisible(1024, 8)
    first = cfg[0][0]
    features = [Conv2d(3, first, 3, stride=2, padding=1, bias=False), BatchNorm2d(first),
                Hardswish()]
    features += [MobileNetV3Block(*c) for c in cfg]
    lastconv_in = cfg[-1][3]
    lastconv_out = 6 * lastconv_in
    features += [Conv2d(lastconv_in, lastconv_out, 1, bias=False), BatchNorm2d(lastconv_out),
                 Hardswish()]
    return Sequential(*features, AdaptiveAvgPool2d(1), Flatten(),
                      Linear(lastconv_out, last_channel), Hardswish(), Dropout(0.2),
                      Linear(last_channel, 1000))


def vgg16_bn():
    # torchvision.models.vgg16_bn(num_classes=1000): make_layers(cfgs["D"], batch_norm=True)
    # (3x3 convs with bias, BatchNorm2d, ReLU; "M" a 2x2 max pool), AdaptiveAvgPool2d((7, 7)),
    # the classifier of three linears with ReLU and dropout.
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    layers, in_channels = [], 3
    for v in cfg:
        if v == "M":
            layers.append(MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [Conv2d(in_channels, v, kernel_size=3, padding=1), BatchNorm2d(v), ReLU()]
            in_channels = v
    return Sequential(
        *layers, AdaptiveAvgPool2d((7, 7)), Flatten(),
        Linear(512 * 7 * 7, 4096), ReLU(), Dropout(0.5),
        Linear(4096, 4096), ReLU(), Dropout(0.5),
        Linear(4096, 1000))


def basic_conv2d(in_channels, out_channels, **kwargs):
    # torchvision's inception.BasicConv2d: conv without bias, BatchNorm2d(eps=0.001), ReLU
    return Sequential(Conv2d(in_channels, out_channels, bias=False, **kwargs),
                      BatchNorm2d(out_channels), ReLU())


class _Branches(Module):
    # torch.cat([branch(x) for branch in branches], 1)
    def forward(self, x, c):
        return _cat([b.forward(x, c) for b in self.branches])


class InceptionA(_Branches):
    def __init__(self, in_channels, pool_features):
        self.branches = [
            basic_conv2d(in_channels, 64, kernel_size=1),
            Sequential(basic_conv2d(in_channels, 48, kernel_size=1),
                       basic_conv2d(48, 64, kernel_size=5, padding=2)),
            Sequential(basic_conv2d(in_channels, 64, kernel_size=1),
                       basic_conv2d(64, 96, kernel_size=3, padding=1),
                       basic_conv2d(96, 96, kernel_size=3, padding=1)),
            Sequential(AvgPool2d(kernel_size=3, stride=1, padding=1),
                       basic_conv2d(in_channels, pool_features, kernel_size=1))]


class InceptionB(_Branches):
    def __init__(self, in_channels):
        self.branches = [
            basic_conv2d(in_channels, 384, kernel_size=3, stride=2),
            Sequential(basic_conv2d(in_channels, 64, kernel_size=1),
                       basic_conv2d(64, 96, kernel_size=3, padding=1),
                       basic_conv2d(96, 96, kernel_size=3, stride=2)),
            MaxPool2d(kernel_size=3, stride=2)]


class InceptionC(_Branches):
    def __init__(self, in_channels, channels_7x7):
        c7 = channels_7x7
        self.branches = [
            basic_conv2d(in_channels, 192, kernel_size=1),
            Sequential(basic_conv2d(in_channels, c7, kernel_size=1),
                       basic_conv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3)),
                       basic_conv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))),
            Sequential(basic_conv2d(in_channels, c7, kernel_size=1),
                       basic_conv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0)),
                       basic_conv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3)),
                       basic_conv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0)),
                       basic_conv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))),
            Sequential(AvgPool2d(kernel_size=3, stride=1, padding=1),
                       basic_conv2d(in_channels, 192, kernel_size=1))]


class InceptionD(_Branches):
    def __init__(self, in_channels):
        self.branches = [
            Sequential(basic_conv2d(in_channels, 192, kernel_size=1),
                       basic_conv2d(192, 320, kernel_size=3, stride=2)),
            Sequential(basic_conv2d(in_channels, 192, kernel_size=1),
                       basic_conv2d(192, 192, kernel_size=(1, 7), padding=(0, 3)),
                       basic_conv2d(192, 192, kernel_size=(7, 1), padding=(3, 0)),
                       basic_conv2d(192, 192, kernel_size=3, stride=2)),
            MaxPool2d(kernel_size=3, stride=2)]


class InceptionE(Module):
    def __init__(self, in_channels):
        self.branch1x1 = basic_conv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = basic_conv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = basic_conv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = basic_conv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = basic_conv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = basic_conv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = basic_conv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = basic_conv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = Sequential(AvgPool2d(kernel_size=3, stride=1, padding=1),
                                      basic_conv2d(in_channels, 192, kernel_size=1))

    def forward(self, x, c):
        b1 = self.branch1x1.forward(x, c)
        b3 = self.branch3x3_1.forward(x, c)
        b3 = _cat([self.branch3x3_2a.forward(b3, c), self.branch3x3_2b.forward(b3, c)])
        bd = self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x, c), c)
        bd = _cat([self.branch3x3dbl_3a.forward(bd, c), self.branch3x3dbl_3b.forward(bd, c)])
        return _cat([b1, b3, bd, self.branch_pool.forward(x, c)])


def inception_v3():
    # torchvision.models.inception_v3(aux_logits=False, transform_input=False): the
    # auxiliary classifier only runs while training, so it is left out (torchvision's
    # 27,161,264 parameters count it).
    return Sequential(
        basic_conv2d(3, 32, kernel_size=3, stride=2),
        basic_conv2d(32, 32, kernel_size=3),
        basic_conv2d(32, 64, kernel_size=3, padding=1),
        MaxPool2d(kernel_size=3, stride=2),
        basic_conv2d(64, 80, kernel_size=1),
        basic_conv2d(80, 192, kernel_size=3),
        MaxPool2d(kernel_size=3, stride=2),
        InceptionA(192, pool_features=32), InceptionA(256, pool_features=64),
        InceptionA(288, pool_features=64),
        InceptionB(288),
        InceptionC(768, channels_7x7=128), InceptionC(768, channels_7x7=160),
        InceptionC(768, channels_7x7=160), InceptionC(768, channels_7x7=192),
        InceptionD(768),
        InceptionE(1280), InceptionE(2048),
        AdaptiveAvgPool2d((1, 1)), Dropout(0.5), Flatten(), Linear(2048, 1000))


class ResBottleneckBlock(Module):
    # torchvision's regnet.ResBottleneckBlock: relu(proj(x) + f(x)), proj (1x1 conv, BN)
    # only where the width or the stride changes; f = BottleneckTransform: a (1x1), b (3x3
    # grouped by group width, with the stride), c (1x1, BN, no activation); no SE in RegNetX.
    def __init__(self, width_in, width_out, stride, group_width, bottleneck_multiplier):
        w_b = int(round(width_out * bottleneck_multiplier))
        g = w_b // group_width
        self.proj = None
        if width_in != width_out or stride != 1:
            self.proj = Sequential(Conv2d(width_in, width_out, 1, stride=stride, bias=False),
                                   BatchNorm2d(width_out))
        self.f = Sequential(
            Conv2d(width_in, w_b, 1, bias=False), BatchNorm2d(w_b), ReLU(),
            Conv2d(w_b, w_b, 3, stride=stride, padding=1, groups=g, bias=False),
            BatchNorm2d(w_b), ReLU(),
            Conv2d(w_b, width_out, 1, bias=False), BatchNorm2d(width_out))

    def forward(self, x, c):
        sc = self.proj.forward(x, c) if self.proj else x
        y = self.f.forward(x, c)
        assert sc == y, f"residual mismatch {sc} vs {y}"
        return y


def regnet_block_params(depth, w_0, w_a, w_m, group_width, bottleneck_multiplier=1.0):
    # torchvision's regnet.BlockParams.from_init_params: per-block widths quantized to
    # multiples of 8 on a log scale, consecutive blocks of one width form a stage (stride 2
    # each), then widths and group widths made compatible (_adjust_widths_groups_compatibilty).
    quant = 8
    widths_cont = [i * w_a + w_0 for i in range(depth)]
    capacity = [round(math.log(w / w_0) / math.log(w_m)) for w in widths_cont]
    block_widths = [int(round(w_0 * w_m ** k / quant) * quant) for k in capacity]
    stage_widths, stage_depths = [], []
    for w in block_widths:
        if stage_widths and stage_widths[-1] == w:
            stage_depths[-1] += 1
        else:
            stage_widths.append(w)
            stage_depths.append(1)
    n = len(stage_widths)
    multipliers = [bottleneck_multiplier] * n
    widths = [int(w * b) for w, b in zip(stage_widths, multipliers)]
    group_widths = [min(group_width, w_bot) for w_bot in widths]
    ws_bot = [_make_divisible(w_bot, g) for w_bot, g in zip(widths, group_widths)]
    stage_widths = [int(w_bot / b) for w_bot, b in zip(ws_bot, multipliers)]
    return list(zip(stage_widths, [2] * n, stage_depths, group_widths, multipliers))


def regnet_x_400mf():
    # torchvision.models.regnet_x_400mf(num_classes=1000): BlockParams.from_init_params(
    # depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16); SimpleStemIN (3x3 stride 2,
    # BN, ReLU) of 32; AnyStage per stage; AdaptiveAvgPool2d, fc.
    layers = [Conv2d(3, 32, 3, stride=2, padding=1, bias=False), BatchNorm2d(32), ReLU()]
    current = 32
    for width_out, stride, depth, group_width, b in regnet_block_params(
            depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16):
        for i in range(depth):
            layers.append(ResBottleneckBlock(current if i == 0 else width_out, width_out,
                                             stride if i == 0 else 1, group_width, b))
        current = width_out
    return Sequential(*layers, AdaptiveAvgPool2d((1, 1)), Flatten(), Linear(current, 1000))


class CNBlock(Module):
    # torchvision's convnext.CNBlock: x + layer_scale * block(x), block = depthwise 7x7 conv,
    # Permute to channels-last, LayerNorm(dim, eps=1e-6), Linear(dim, 4 dim), GELU,
    # Linear(4 dim, dim), Permute back; layer_scale a parameter of shape (dim, 1, 1) (stochastic
    # depth is a training-time drop, no shape or weight).
    def __init__(self, dim):
        self.dim = dim
        self.block = Sequential(
            Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True),
            Permute([0, 2, 3, 1]), LayerNorm(dim, eps=1e-6),
            ChannelsLastLinear(dim, 4 * dim), GELU(), ChannelsLastLinear(4 * dim, dim),
            Permute([0, 3, 1, 2]))

    def forward(self, x, c):
        c.params += self.dim                   # layer_scale, broadcast over H and W
        y = self.block.forward(x, c)
        assert y == x and y[0] == self.dim, f"residual mismatch {y} vs {x}"
        return y


def convnext_tiny():
    # torchvision.models.convnext_tiny(num_classes=1000): CNBlockConfig(input_channels,
    # out_channels, num_layers) = (96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3);
    # stem Conv2d(3, 96, 4, stride 4) + LayerNorm2d; after each stage with out_channels a
    # LayerNorm2d and Conv2d(k=2, stride 2); head AdaptiveAvgPool2d(1), LayerNorm2d, Flatten,
    # Linear(768, 1000). Every norm eps 1e-6.
    setting = [(96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)]
    first = setting[0][0]
    layers = [Conv2d(3, first, kernel_size=4, stride=4, padding=0, bias=True),
              LayerNorm2d(first, eps=1e-6)]
    for cin, cout, n in setting:
        layers += [CNBlock(cin) for _ in range(n)]
        if cout is not None:
            layers += [LayerNorm2d(cin, eps=1e-6), Conv2d(cin, cout, kernel_size=2, stride=2)]
    last = setting[-1][0]
    return Sequential(*layers, AdaptiveAvgPool2d(1), LayerNorm2d(last, eps=1e-6), Flatten(),
                      Linear(last, 1000))


# --------------------------------------------------------------------------------------
# The valid fixtures (tests/fixtures/valid/*.cnn), written out the same way
# --------------------------------------------------------------------------------------

class BasicUnit(Module):
    # conv-bn (no conv bias) x2, projection conv1x1-bn shortcut where the shape changes
    def __init__(self, cin, c, stride=1):
        self.body = Sequential(Conv2d(cin, c, 3, stride=stride, padding=1, bias=False),
                               BatchNorm2d(c), ReLU(),
                               Conv2d(c, c, 3, padding=1, bias=False), BatchNorm2d(c))
        self.short = (Sequential(Conv2d(cin, c, 1, stride=stride, bias=False),
                                 BatchNorm2d(c))
                      if stride != 1 or cin != c else None)

    def forward(self, x, c):
        y = self.body.forward(x, c)
        sc = self.short.forward(x, c) if self.short else x
        assert y == sc
        return y


def valid_uses_lib():
    return Sequential(
        Conv2d(3, 16, 3, padding=1, bias=False), BatchNorm2d(16), ReLU(),
        BasicUnit(16, 16), ReLU(),
        BasicUnit(16, 32, stride=2), ReLU(),
        BasicUnit(32, 32), ReLU(),
        LeakyReLU(0.1), ELU(1.0), Tanh(), Sigmoid(),
        AdaptiveAvgPool2d(1), Flatten(), Linear(32, 10))


def valid_pooling():
    return Sequential(
        MaxPool2d(2, ceil_mode=True),                        # 33 -> 17
        AvgPool2d(3, stride=2, padding=1),                   # 17 -> 9
        Conv2d(4, 8, (3, 5), padding=(1, 2)),
        ZeroPad2d((1, 1, 0, 2)), Conv2d(8, 8, 3),            # top 0 bottom 2 left 1 right 1
        Conv2d(8, 16, 3, padding=1, groups=2, bias=False),   # 'same' for k=3
        Conv2d(16, 16, 3, padding=2, dilation=2, groups=16),
        Conv2d(16, 16, (1, 3), stride=(1, 2), padding=(0, 1)),
        MaxPool2d((3, 1), stride=(2, 1), padding=(1, 0)),
        AvgPool2d(2, ceil_mode=True),
        AdaptiveAvgPool2d((2, 2)), Flatten(),
        Linear(64, 10, bias=False))


def valid_expressions():
    return Sequential(
        Conv2d(3, 16, 3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(16, 32, 3, padding=1), ReLU(), Conv2d(32, 32, 1), ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(64, 128, 1), ReLU(),
        Conv2d(128, 32, 3, padding=1), ReLU(),
        MaxPool2d(2), Sigmoid(),
        Conv2d(32, 32, 1), ReLU(), Conv2d(32, 32, 1), ReLU(),
        AdaptiveAvgPool2d(1), Flatten(), Linear(32, 10))


def valid_repeat_over_lists():
    return Sequential(
        Conv2d(3, 16, 3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(16, 32, 3, padding=1), ReLU(), Conv2d(32, 32, 3, padding=1), ReLU(),
        MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1), ReLU(), Conv2d(64, 64, 3, padding=1), ReLU(),
        MaxPool2d(2),
        Conv2d(64, 16, 1), ReLU(), Conv2d(16, 16, 3, padding=1), ReLU(),
        Conv2d(16, 8, 1), Conv2d(8, 4, 1),
        AdaptiveAvgPool2d(1), Flatten(), Linear(4, 10))


class ValidSkips(Module):
    def forward(self, x, c):
        a = Sequential(Conv2d(1, 8, 3), ReLU()).forward(x, c)
        y = MaxPool2d(2).forward(a, c)
        b = Sequential(Conv2d(8, 16, 3, padding=1), ReLU()).forward(y, c)
        y = MaxPool2d(2, stride=2).forward(b, c)
        y = ConvTranspose2d(16, 16, 2, stride=2).forward(y, c)
        assert y[1:] == b[1:]
        y = (b[0] + y[0],) + y[1:]                                  # cat(b, y)
        y = ConvTranspose2d(32, 8, 3, stride=2, padding=2, output_padding=1).forward(y, c)
        assert a[1] >= y[1] and (a[1] - y[1]) % 2 == 0
        y = (a[0] + y[0] + y[0],) + y[1:]                           # cat(crop(a), y, relu(y))
        r = Sequential(Conv2d(24, 24, 3, padding=1), BatchNorm2d(24)).forward(y, c)
        assert r == y                                               # y + r
        y = AvgPool2d(2).forward(r, c)
        return Sequential(AdaptiveAvgPool2d(1), Flatten(), Linear(24, 10)).forward(y, c)


class SqueezeExcitation(Module):
    # torchvision's SqueezeExcitation: pool, 1x1 conv down, an activation (ReLU as
    # MobileNetV3, SiLU as EfficientNet), 1x1 conv up, a gate (Hardsigmoid, Sigmoid), and
    # x * gate.
    def __init__(self, channels, squeeze, activation=None, gate=None):
        activation = activation or ReLU
        gate = gate or Hardsigmoid
        self.fc = Sequential(AdaptiveAvgPool2d(1), Conv2d(channels, squeeze, 1), activation(),
                             Conv2d(squeeze, channels, 1), gate())

    def forward(self, x, c):
        g = self.fc.forward(x, c)
        assert g == (x[0], 1, 1), f"gate {g} on {x}"
        return x


class InvertedResidual(Module):
    def __init__(self, cin, cout, expand, stride):
        hidden = cin * expand
        self.body = Sequential(
            Conv2d(cin, hidden, 1, bias=False), BatchNorm2d(hidden), Hardswish(),
            Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            BatchNorm2d(hidden), Hardswish(),
            SqueezeExcitation(hidden, hidden // 4),
            Conv2d(hidden, cout, 1, bias=False), BatchNorm2d(cout))
        self.short = (Sequential(Conv2d(cin, cout, 1, stride=stride, bias=False),
                                 BatchNorm2d(cout))
                      if stride != 1 or cin != cout else None)

    def forward(self, x, c):
        y = self.body.forward(x, c)
        sc = self.short.forward(x, c) if self.short else x
        assert sc == y, f"residual mismatch {sc} vs {y}"
        return y


class ValidGates(Module):
    def forward(self, x, c):
        y = Sequential(Conv2d(3, 16, 3, stride=2, padding=1), BatchNorm2d(16), ReLU6(),
                       InvertedResidual(16, 16, 4, 1),
                       InvertedResidual(16, 24, 4, 2)).forward(x, c)
        g = Sequential(Conv2d(24, 24, 3, padding=1), Sigmoid()).forward(y, c)
        assert g == y                                               # y * g
        return Sequential(AdaptiveAvgPool2d(1), Flatten(), Linear(24, 10)).forward(y, c)


def valid_rank1():
    return Sequential(
        Linear(784, 256), BatchNorm1d(256), ReLU(), Dropout(0.2),
        Linear(256, 128), ELU(0.5),
        Linear(128, 64, bias=False), LeakyReLU(0.01), Tanh(), SiLU(),
        Linear(64, 32), GELU(), ReLU6(), Hardswish(), Hardsigmoid(),
        Linear(32, 10), Softmax(dim=1))


class ValidUpsampleModes(Module):
    def forward(self, x, c):
        skip = Sequential(Conv2d(3, 16, 3, padding=1), ReLU(), MaxPool2d(2)).forward(x, c)
        y = Sequential(Conv2d(16, 32, 3, padding=1), ReLU(), MaxPool2d(2),
                       Upsample(2, mode="bilinear", align_corners=True)).forward(skip, c)
        assert y[1:] == skip[1:]
        y = (skip[0] + y[0],) + y[1:]                               # cat(skip, y)
        return Sequential(Conv2d(48, 16, 3, padding=1), ReLU(),
                          Upsample(2, mode="bilinear"), Upsample((1, 1)),
                          Conv2d(16, 4, 1)).forward(y, c)


class ValidConcatBranchPerIteration(Module):
    # torchvision's ASPP (a 1x1 branch, one dilated 3x3 branch per rate, image pooling)
    # and PSPNet's pyramid pooling (the input, and one pooled branch per bin), each
    # branch's layers written out by hand.
    def forward(self, x, c):
        x = Sequential(Conv2d(3, 32, 3, padding=1), ReLU()).forward(x, c)
        branches = [Sequential(Conv2d(32, 16, 1, bias=False), BatchNorm2d(16), ReLU())]
        for r in (2, 4, 6):
            branches.append(Sequential(Conv2d(32, 16, 3, padding=r, dilation=r, bias=False),
                                       BatchNorm2d(16), ReLU()))
        branches.append(Sequential(AdaptiveAvgPool2d(1), Conv2d(32, 16, 1, bias=False),
                                   BatchNorm2d(16), ReLU(), Upsample(24)))
        x = _cat([b.forward(x, c) for b in branches])
        outs = [x]
        for b in (1, 2, 3, 6):
            outs.append(Sequential(AdaptiveAvgPool2d(b), Conv2d(80, 8, 1, bias=False),
                                   Upsample(24 // b, mode="bilinear", align_corners=True)
                                   ).forward(x, c))
        x = _cat(outs)
        # In braces: one branch, two convs in a row.
        x = _cat([Sequential(Conv2d(112, 8, 3, padding=1), Conv2d(8, 8, 3, padding=1)
                             ).forward(x, c), x])
        return Sequential(AdaptiveAvgPool2d(1), Flatten(), Linear(120, 10)).forward(x, c)


class ValidNormsAndTensorArguments(Module):
    # A small U-Net with GroupNorm in the encoder and InstanceNorm in the decoder, whose
    # Up block takes its skip tensor: cat(crop(skip), up(x)).
    def forward(self, x, c):
        e1 = Sequential(Conv2d(3, 16, 3, padding=1, bias=False), GroupNorm(4, 16), ReLU()
                        ).forward(x, c)
        e2 = Sequential(MaxPool2d(2), Conv2d(16, 32, 3, padding=1, bias=False),
                        GroupNorm(4, 32), ReLU()).forward(e1, c)
        x = Sequential(MaxPool2d(2), Conv2d(32, 64, 3, padding=1, bias=False),
                       GroupNorm(4, 64), ReLU()).forward(e2, c)
        for cin, cout, skip in ((64, 32, e2), (32, 16, e1)):
            y = ConvTranspose2d(cin, cout, 2, stride=2).forward(x, c)
            y = _cat([skip, y])
            mid = skip[0]
            x = Sequential(Conv2d(2 * cout, mid, 3, padding=1), InstanceNorm2d(mid, affine=True),
                           ReLU(), Conv2d(mid, cout, 3, padding=1), InstanceNorm2d(cout), ReLU()
                           ).forward(y, c)
        return Sequential(Conv2d(16, 8, 1), GroupNorm(2, 8, affine=False), AdaptiveAvgPool2d(1),
                          Flatten(), Linear(8, 12), GroupNorm(3, 12), ReLU(), Linear(12, 5)
                          ).forward(x, c)


def _cat(outs):
    assert all(o[1:] == outs[0][1:] for o in outs), outs
    return (sum(o[0] for o in outs),) + outs[0][1:]


VALID = {
    "uses_lib": (valid_uses_lib, (3, 32, 32)),
    "pooling": (valid_pooling, (4, 33, 33)),
    "expressions": (valid_expressions, (3, 32, 32)),
    "repeat_over_lists": (valid_repeat_over_lists, (3, 32, 32)),
    "skips": (ValidSkips, (1, 66, 66)),
    "rank1": (valid_rank1, (784,)),
    "norms_and_tensor_arguments": (ValidNormsAndTensorArguments, (3, 32, 32)),
    "gates": (ValidGates, (3, 32, 32)),
    "upsample_modes": (ValidUpsampleModes, (3, 32, 32)),
    "concat_branch_per_iteration": (ValidConcatBranchPerIteration, (3, 24, 24)),
}


def super_resolution():
    # pytorch/examples' super_resolution Net(upscale_factor=3), as PyTorch's ONNX tutorial
    # builds it.
    r = 3
    return Sequential(Conv2d(1, 64, 5, 1, 2), ReLU(), Conv2d(64, 64, 3, 1, 1), ReLU(),
                      Conv2d(64, 32, 3, 1, 1), ReLU(), Conv2d(32, r * r, 3, 1, 1),
                      PixelShuffle(r))


NETWORKS = {
    # file stem: (builder, input shape)
    "lenet": (lenet, (1, 28, 28)),
    "lenet_nopad_maxpool": (lenet_nopad_maxpool, (1, 28, 28)),
    "lenet_bn": (lenet_bn, (1, 28, 28)),
    "alexnet": (alexnet, (1, 224, 224)),
    "vgg11": (vgg11, (1, 224, 224)),
    "nin": (nin, (1, 224, 224)),
    "googlenet": (googlenet, (1, 96, 96)),
    "resnet18": (resnet18, (1, 96, 96)),
    "densenet": (densenet, (1, 96, 96)),
    "simple_cnn": (simple_cnn, (1, 28, 28)),
    "mobilenet_v2": (mobilenet_v2, (3, 224, 224)),
    "shufflenet_v2": (shufflenet_v2, (3, 224, 224)),
    "efficientnet_b0": (efficientnet_b0, (3, 224, 224)),
    "squeezenet1_1": (squeezenet1_1, (3, 224, 224)),
    "resnext50_32x4d": (resnext50_32x4d, (3, 224, 224)),
    "unet_bilinear": (UNetBilinear, (3, 256, 256)),
    "deeplabv3_resnet50": (DeepLabV3, (3, 520, 520)),
    "unet": (unet, (1, 572, 572)),
    "tconv_decoder": (tconv_decoder, (64, 7, 7)),
    "hdc": (hdc, (3, 32, 32)),
    "cyclegan_resnet_generator": (cyclegan_resnet_generator, (3, 256, 256)),
    "super_resolution": (super_resolution, (1, 224, 224)),
    "mobilenet_v3_small": (mobilenet_v3_small, (3, 224, 224)),
    "vgg16_bn": (vgg16_bn, (3, 224, 224)),
    "inception_v3": (inception_v3, (3, 299, 299)),
    "regnet_x_400mf": (regnet_x_400mf, (3, 224, 224)),
    "convnext_tiny": (convnext_tiny, (3, 224, 224)),
    "googlenet_aux": (googlenet_aux, (3, 224, 224)),
}

# Published numbers these must agree with (sanity checks of the reference itself).
PUBLISHED = {
    "lenet": 61_706,                # d2l 7.6 / the classic LeNet-5 count on 28x28 with pad 2
    "lenet_nopad_maxpool": 44_426,  # the same layers without the first conv's padding
    "efficientnet_b0": 5_288_548,   # torchvision's efficientnet_b0
    "squeezenet1_1": 1_235_496,     # torchvision's squeezenet1_1
    "resnext50_32x4d": 25_028_904,  # torchvision's resnext50_32x4d
    "unet_bilinear": 17_263_042,    # milesial/Pytorch-UNet's UNet(3, 2, bilinear=True)
    "super_resolution": 59_657,     # PyTorch's ONNX tutorial's SuperResolutionNet(3)
    "deeplabv3_resnet50": 39_638_869,  # torchvision's, num_classes=21, aux_loss=False
    # pytorch-CycleGAN-and-pix2pix's ResnetGenerator(3, 3, 64, BatchNorm2d, n_blocks=9),
    # counted with torch 2 here
    "cyclegan_resnet_generator": 11_383_427,
    "mobilenet_v3_small": 2_542_856,  # torchvision's mobilenet_v3_small
    "vgg16_bn": 138_365_992,          # torchvision's vgg16_bn
    # torchvision's inception_v3(aux_logits=False); its published 27,161,264 counts the
    # auxiliary classifier
    "inception_v3": 23_834_568,
    "regnet_x_400mf": 5_495_976,      # torchvision's regnet_x_400mf
    "convnext_tiny": 28_589_128,      # torchvision's convnext_tiny
    "googlenet_aux": 13_004_888,      # torchvision's googlenet(aux_logits=True)
}


def evaluate(table):
    out = {}
    for name, (build, shape) in table.items():
        c = Cost()
        y = build().forward(tuple(shape), c)
        out[name] = {"input": list(shape), "output": list(y), "params": c.params,
                     "macs": c.macs}
    return out


def write(out, filename):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), filename)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"== {filename}")
    w = max(len(n) for n in out)
    for name, r in out.items():
        print(f"{name:<{w}}  in {str(r['input']):<16} out {str(r['output']):<16} "
              f"params {r['params']:>12,}  MACs {r['macs']:>16,}")


def main():
    out = evaluate(NETWORKS)
    for name, p in PUBLISHED.items():
        assert out[name]["params"] == p, (name, out[name]["params"], p)
    write(out, "expected.json")            # models/*.cnn, keyed by file stem
    write(evaluate(VALID), "expected_valid.json")   # tests/fixtures/valid/*.cnn
    return 0


if __name__ == "__main__":
    sys.exit(main())

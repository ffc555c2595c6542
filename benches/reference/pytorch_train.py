"""PyTorch reference for `cnnc train` (a measurement aid, not run by CI: torch is not installed
there). Trains the notes' LeNet or LeNet-BN on Fashion-MNIST with the same recipe as cnnc
(batch 256, shuffled each epoch, images scaled to [0, 1], last partial batch kept, test
accuracy in eval mode after each epoch) and prints one line per epoch in cnnc's format;
examples/sec counts training examples over the epoch's time, evaluation included, as cnnc does.

    python benches/reference/pytorch_train.py lenet_bn --optimizer adam --lr 0.001 --epochs 5 --init xavier --seed 0

On a GPU (`--device cuda`, as scripts/gpu_check.sh runs it) each batch goes to the device as it
is used, as in d2l's train_ch6, and `--resize` resamples it there (bilinear, as cnnc does on
the host); `--limit-train`/`--limit-test` take the first examples, as cnnc's options do:

    python benches/reference/pytorch_train.py alexnet --resize 224 --lr 0.01 --batch 128 --epochs 3 \
        --limit-train 5120 --limit-test 1000 --device cuda
"""
import argparse, gzip, struct, time
import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(split):
    x = idx(f"{DATA}/{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = idx(f"{DATA}/{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def lenet():
    # models/lenet.cnn: d2l's LeNet (padding 2 on the first conv, sigmoid, average pooling).
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


def lenet_bn():
    # models/lenet_bn.cnn: d2l's BN LeNet (no padding, batch norm before each sigmoid).
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(), nn.Linear(84, 10))


def alexnet():
    # models/alexnet.cnn: d2l's AlexNet for one-channel 224×224 inputs.
    return nn.Sequential(
        nn.Conv2d(1, 96, 11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 10))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=["lenet", "lenet_bn", "alexnet"])
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--lr", type=float, default=0.9)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--init", choices=["default", "xavier"], default="default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (the dev machine has 2)")
    p.add_argument("--resize", type=int)
    p.add_argument("--limit-train", type=int)
    p.add_argument("--limit-test", type=int)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    net = {"lenet": lenet, "lenet_bn": lenet_bn, "alexnet": alexnet}[a.model]()
    if a.init == "xavier":
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    opt = (torch.optim.Adam(net.parameters(), lr=a.lr) if a.optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=a.lr))
    loss_fn = nn.CrossEntropyLoss()
    net.to(dev)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    xtr, ytr = xtr[:a.limit_train], ytr[:a.limit_train]
    xte, yte = xte[:a.limit_test], yte[:a.limit_test]

    def batch(x, y):
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        if a.resize:
            x = nn.functional.interpolate(x, size=(a.resize, a.resize), mode="bilinear",
                                          align_corners=False)
        return x, y

    for epoch in range(1, a.epochs + 1):
        t = time.time()
        net.train()
        order = torch.randperm(len(xtr))
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(xtr), a.batch):
            ix = order[i:i + a.batch]
            x, y = batch(xtr[ix], ytr[ix])
            out = net(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
        net.eval()
        with torch.no_grad():
            test = sum((net(x).argmax(1) == y).sum().item()
                       for x, y in (batch(xte[i:i + 1024], yte[i:i + 1024])
                                    for i in range(0, len(xte), 1024)))
        dt = time.time() - t
        print(f"epoch {epoch}, loss {total / seen:.4f}, train acc {correct / seen:.3f}, "
              f"test acc {test / len(xte):.3f}, {seen / dt:.1f} examples/sec",
              flush=True)


if __name__ == "__main__":
    main()

"""Lock-step comparison of cnnc's training step with PyTorch (a measurement aid, not run by CI:
torch is not installed there). Both start from the same initial weights (cnnc's export) and see
the same batches in the same order; cnnc's step graph (`cnnc export --train`) runs through
onnxruntime, PyTorch runs the same model (benches/reference/pytorch_train.py) in eager mode.
After each epoch it prints both losses, the largest difference of every parameter and running
statistic, and the test accuracy of each in eval mode. Needs torch, onnx and onnxruntime:

    cargo build --release
    python benches/reference/pytorch_lockstep.py lenet_bn --optimizer adam --lr 0.001 --epochs 5 --seed 0
"""
import argparse, os, subprocess, sys, tempfile
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_train as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CNNC = os.path.join(ROOT, "target", "release", "cnnc")

# cnnc's layer names → the index of the same layer in pytorch_train's nn.Sequential.
LAYERS = {
    "lenet": {"conv1": 0, "conv2": 3, "linear1": 7, "linear2": 9, "linear3": 11},
    "lenet_bn": {"conv1": 0, "batchnorm1": 1, "conv2": 4, "batchnorm2": 5, "linear1": 9,
                 "batchnorm3": 10, "linear2": 12, "batchnorm4": 13, "linear3": 15},
}

# Layers whose only consumer is a batch norm.
PRE_BN = {"lenet_bn": ("conv1", "conv2", "linear1", "linear2")}


def cnnc(*args):
    subprocess.run([CNNC, *args], check=True, stdout=subprocess.DEVNULL)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model", choices=list(LAYERS))
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--init", choices=["default", "xavier"], default="default")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(2)
    src = os.path.join(ROOT, "models", f"{a.model}.cnn")
    tmp = tempfile.mkdtemp()
    step_path, init_path = os.path.join(tmp, "step.onnx"), os.path.join(tmp, "init.onnx")
    cnnc("export", src, "--train", "--optimizer", a.optimizer, "-o", step_path)
    cnnc("export", src, "--init", a.init, "--seed", str(a.seed), "-o", init_path)

    # cnnc's state: parameters from the export, running statistics at (0, 1), optimizer state 0.
    state = {t.name: numpy_helper.to_array(t).copy()
             for t in onnx.load(init_path).graph.initializer}
    session = ort.InferenceSession(step_path, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    for name in inputs:
        if name.endswith(".running_mean"):
            state[name] = np.zeros_like(state[name.rsplit(".", 1)[0] + ".weight"])
        elif name.endswith(".running_var"):
            state[name] = np.ones_like(state[name.rsplit(".", 1)[0] + ".weight"])
    for name in inputs:
        if name not in state and name not in ("input", "labels", "lr", "t"):
            state[name] = np.zeros_like(state[name.rsplit(".", 1)[0]])

    # The same weights in PyTorch.
    net = {"lenet": ref.lenet, "lenet_bn": ref.lenet_bn}[a.model]()
    index = LAYERS[a.model]

    def torch_name(name):
        layer, what = name.split(".", 1)
        return f"{index[layer]}.{what}"

    compared = [n for n in state if n.split(".", 1)[0] in index and "exp_avg" not in n
                and "momentum" not in n]
    net.load_state_dict({torch_name(n): torch.from_numpy(state[n].copy()) for n in compared},
                        strict=True)
    opt = (torch.optim.Adam(net.parameters(), lr=a.lr) if a.optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=a.lr))
    loss_fn = torch.nn.CrossEntropyLoss()
    xtr, ytr = ref.load("train")
    xte, yte = ref.load("t10k")

    def test_acc(params):
        net_eval = {"lenet": ref.lenet, "lenet_bn": ref.lenet_bn}[a.model]()
        net_eval.load_state_dict({torch_name(n): torch.as_tensor(params[n]) for n in compared})
        net_eval.eval()
        with torch.no_grad():
            return (net_eval(xte).argmax(1) == yte).float().mean().item()

    rng = np.random.default_rng(a.seed)
    t = 0
    for epoch in range(1, a.epochs + 1):
        order = rng.permutation(len(xtr))
        sums = np.zeros(2)
        for start in range(0, len(xtr), a.batch):
            t += 1
            ix = order[start:start + a.batch]
            x, y = xtr[ix], ytr[ix]
            feed = {"input": x.numpy(), "labels": y.numpy(), "lr": np.array(a.lr, np.float32),
                    "t": np.array(t, np.float32)}
            feed.update({n: state[n] for n in inputs if n in state})
            result = dict(zip(outputs, session.run(None, {n: feed[n] for n in inputs})))
            for name, value in result.items():
                if name.startswith("new."):
                    state[name[4:]] = value
            net.train()
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            sums += [float(result["loss"]) * len(y), loss.item() * len(y)]
        ours = net.state_dict()
        torch_params = {n: ours[torch_name(n)].numpy() for n in compared}

        def largest(names):
            d, n = max((float(np.max(np.abs(torch_params[n] - state[n]))), n) for n in names)
            return f"{n} {d:.1e}"
        # A bias feeding a batch norm has a zero gradient: cnnc leaves it in place, PyTorch's
        # Adam moves it by rounding noise, and each running mean follows its bias. Those are
        # reported apart from everything else.
        drifting = [n for n in compared if n.endswith(".running_mean")
                    or (n.endswith(".bias") and n.split(".")[0] in PRE_BN.get(a.model, ()))]
        rest = [n for n in compared if n not in drifting]
        print(f"epoch {epoch}: mean loss cnnc {sums[0] / len(xtr):.6f} torch "
              f"{sums[1] / len(xtr):.6f}; test acc cnnc {test_acc(state):.4f} torch "
              f"{test_acc(torch_params):.4f}; largest difference {largest(rest)}"
              + (f" (biases before batch norm and running means: {largest(drifting)})"
                 if drifting else ""), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""PyTorch's side of tests/interop/regress_test.cpp (issue 15: regression with standardised targets).

    regress_torch.py data OUT_DIR                writes the synthetic sets as CSV
    regress_torch.py fit TRAIN.csv TEST.csv SPEC.json
    regress_torch.py step CASE.json

data: y = scale · f(x) + noise, f(x) = sin(x0) + x1·x2/2 + 0.3·x3² − 0.2·x4 on 5 normal features,
2000 training and 500 test rows, for scale 1000 ("k") and 1e9 (the same targets ×10⁶, "m"); prints
{"files": [...]}.

fit: the tuned PyTorch MLP on the same split, to compare backprop's test RMSE with. The same
network as backprop's run (SPEC: hidden widths, activation, epochs, batch), the features and the
targets standardised from the training rows as a practitioner would, Adam at each of SPEC's learning
rates; prints {"rmse": the best test RMSE over the learning rates, in the targets' units, "by_lr"}.
Choosing the learning rate on the test set itself favours PyTorch, so the comparison is strict.

step: one SGD step of the standardised problem from the given weights, with autograd: targets
standardised here from the raw targets (mean and population standard deviation in float64), the
quadratic loss ½ Σ_t (a_t − y'_t)² averaged over the batch; prints {"loss", "weights", "biases"}.
"""

import csv
import json
import math
import sys

import numpy as np
import torch
from torch import nn


def cmd_data(out):
    rng = np.random.default_rng(15)
    n = 2500
    x = rng.normal(size=(n, 5))
    f = np.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 0.3 * x[:, 3] ** 2 - 0.2 * x[:, 4]
    noise = rng.normal(scale=0.2, size=n)
    files = []
    for name, scale in (("k", 1e3), ("m", 1e9)):
        y = scale * (f + noise)
        for part, rows in (("train", slice(0, 2000)), ("test", slice(2000, n))):
            path = f"{out}/{name}_{part}.csv"
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["a", "b", "c", "d", "e", "y"])
                for xi, yi in zip(x[rows], y[rows]):
                    w.writerow([repr(float(v)) for v in xi] + [repr(float(yi))])
            files.append(path)
    print(json.dumps({"files": files}))


def read(path):
    with open(path) as fh:
        rows = list(csv.reader(fh))[1:]
    a = np.array(rows, dtype=np.float64)
    return a[:, :-1], a[:, -1:]


def activation(name):
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[name]()


def cmd_fit(train_path, test_path, spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    xtr, ytr = read(train_path)
    xte, yte = read(test_path)
    mu, sd = xtr.mean(0), xtr.std(0)
    ymu, ysd = ytr.mean(0), ytr.std(0)
    xtr_t = torch.tensor((xtr - mu) / sd, dtype=torch.float32)
    ytr_t = torch.tensor((ytr - ymu) / ysd, dtype=torch.float32)
    xte_t = torch.tensor((xte - mu) / sd, dtype=torch.float32)
    torch.set_num_threads(1)
    by_lr = {}
    for lr in spec["lrs"]:
        torch.manual_seed(1)
        widths = [xtr.shape[1]] + spec["hidden"] + [1]
        modules = []
        for i in range(len(widths) - 1):
            modules.append(nn.Linear(widths[i], widths[i + 1]))
            if i + 2 < len(widths):
                modules.append(activation(spec["activation"]))
        net = nn.Sequential(*modules)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        n, b = xtr_t.shape[0], spec["batch"]
        g = torch.Generator().manual_seed(1)
        for _ in range(spec["epochs"]):
            order = torch.randperm(n, generator=g)
            for s in range(0, n, b):
                idx = order[s:s + b]
                opt.zero_grad()
                loss = 0.5 * ((net(xtr_t[idx]) - ytr_t[idx]) ** 2).sum(1).mean()
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = net(xte_t).double().numpy() * ysd + ymu
        rmse = float(np.sqrt(((pred - yte) ** 2).mean()))
        by_lr[str(lr)] = rmse if math.isfinite(rmse) else None
    finite = [v for v in by_lr.values() if v is not None]
    print(json.dumps({"rmse": min(finite) if finite else None, "by_lr": by_lr}))


def cmd_step(case_path):
    with open(case_path) as f:
        case = json.load(f)
    torch.set_num_threads(1)
    layers = case["layers"]
    linears = [nn.Linear(layers[i], layers[i + 1]) for i in range(len(layers) - 1)]
    modules = []
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(torch.tensor(case["weights"][i], dtype=torch.float32))
            lin.bias.copy_(torch.tensor(case["biases"][i], dtype=torch.float32))
            modules.append(lin)
            if i + 1 < len(linears):
                modules.append(activation(case["hidden"]))
    net = nn.Sequential(*modules)
    x = torch.tensor(case["x"], dtype=torch.float32)
    train_targets = np.array(case["train_targets"], dtype=np.float64)  # every training row
    mean, sd = train_targets.mean(0), train_targets.std(0)
    y = torch.tensor((np.array(case["y"], dtype=np.float64) - mean) / sd, dtype=torch.float32)
    opt = torch.optim.SGD(net.parameters(), lr=case["lr"])
    opt.zero_grad()
    loss = 0.5 * ((net(x) - y) ** 2).sum(1).mean()
    loss.backward()
    opt.step()
    print(json.dumps({"loss": loss.item(),
                      "weights": [lin.weight.detach().tolist() for lin in linears],
                      "biases": [lin.bias.detach().tolist() for lin in linears]}))


def main():
    cmd = sys.argv[1]
    if cmd == "data":
        cmd_data(sys.argv[2])
    elif cmd == "fit":
        cmd_fit(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "step":
        cmd_step(sys.argv[2])
    else:
        raise SystemExit("usage: regress_torch.py data|fit|step ...")


if __name__ == "__main__":
    main()

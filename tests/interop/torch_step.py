#!/usr/bin/python3
"""PyTorch's side of tests/interop/torch_step_test.cpp: the same steps, autograd and torch.optim.

    torch_step.py CASES.json

CASES: {"rel_floor": F, "cases": [{"name", "layers", "hidden", "output", "loss", "leaky_slope",
"optimizer": {"kind", "lr", ...}, "x", "y", "params0": {"weights", "biases"}, "steps": [{"loss",
"weights", "biases"}, ...]}]}: the starting parameters, the batch, and backprop's parameters and
batch loss after each step. Prints {"cases": [{"name", "relative_change", "steps": [{"max_rel",
"max_rel_norm", "max_abs", "loss_rel"}]}]} per step: max_rel is the largest |ours - torch| /
max(|torch|, rel_floor) over every parameter, max_rel_norm the largest max|ours - torch| /
max|torch| over the parameter tensors.

Written from the definitions, sharing nothing with the C++: the network is an nn.Sequential, the
losses are torch expressions averaged over the batch, float32 throughout.
"""

import json
import sys

import torch
from torch import nn
from torch.nn import functional as F


def activation(name, slope):
    return {
        "sigmoid": nn.Sigmoid(),
        "tanh": nn.Tanh(),
        "relu": nn.ReLU(),
        "leaky-relu": nn.LeakyReLU(slope),
        "identity": nn.Identity(),
    }[name]


def build(case):
    layers = case["layers"]
    linears = [nn.Linear(layers[i], layers[i + 1]) for i in range(len(layers) - 1)]
    modules = []
    load(linears, case["params0"])
    for i, lin in enumerate(linears):
        modules.append(lin)
        if i + 1 < len(linears):
            modules.append(activation(case["hidden"], case["leaky_slope"]))
    return nn.Sequential(*modules), linears  # the output activation is part of the loss below


def batch_loss(case, z, y):
    """The batch-averaged loss from the output layer's pre-activations z."""
    out, loss = case["output"], case["loss"]
    if loss == "cross-entropy" and out == "softmax":
        return -(y * F.log_softmax(z, dim=1)).sum(1).mean()
    if loss == "cross-entropy" and out == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(1).mean()
    a = {"softmax": lambda: torch.softmax(z, dim=1), "sigmoid": lambda: torch.sigmoid(z),
         "identity": lambda: z}[out]()
    return 0.5 * ((a - y) ** 2).sum(1).mean()


def optimizer(cfg, params):
    kind, lr = cfg["kind"], cfg["lr"]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=cfg["weight_decay"])
    if kind == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                               weight_decay=cfg["weight_decay"])
    if kind in ("adam", "adamw"):
        make = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return make(params, lr=lr, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                    weight_decay=cfg["weight_decay"])
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg["alpha"], eps=cfg["eps"],
                                   weight_decay=cfg["weight_decay"])
    if kind == "irprop":
        return torch.optim.Rprop(params, lr=lr)
    raise ValueError("unknown optimizer " + kind)


def load(linears, params):
    with torch.no_grad():
        for i, lin in enumerate(linears):
            lin.weight.copy_(torch.tensor(params["weights"][i], dtype=torch.float32))
            lin.bias.copy_(torch.tensor(params["biases"][i], dtype=torch.float32))


def compare(ours, linears, floor):
    """(max_rel, max_rel_norm, max_abs) over every parameter tensor (each weight matrix and bias
    vector): max_rel per element |ours - torch| / max(|torch|, floor); max_rel_norm per tensor
    max |ours - torch| / max |torch| (the infinity-norm relative error)."""
    worst_rel, worst_norm, worst_abs = 0.0, 0.0, 0.0
    for i, lin in enumerate(linears):
        for mine, theirs in ((ours["weights"][i], lin.weight), (ours["biases"][i], lin.bias)):
            mine = torch.tensor(mine, dtype=torch.float64)
            theirs = theirs.detach().to(torch.float64)
            diff = (mine - theirs).abs()
            worst_abs = max(worst_abs, diff.max().item())
            worst_rel = max(worst_rel, (diff / theirs.abs().clamp(min=floor)).max().item())
            worst_norm = max(worst_norm, diff.max().item() / theirs.abs().max().item())
    return worst_rel, worst_norm, worst_abs


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    floor = spec["rel_floor"]
    results = []
    for case in spec["cases"]:
        net, linears = build(case)
        start = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
        opt = optimizer(case["optimizer"], net.parameters())
        x = torch.tensor(case["x"], dtype=torch.float32)
        y = torch.tensor(case["y"], dtype=torch.float32)
        steps = []
        for s, ours in enumerate(case["steps"]):
            if s > 0:
                # Every step starts from the same weights: ours after the step before. Each side's
                # optimizer state (momentum buffers, moments) carries on from its own gradients.
                load(linears, case["steps"][s - 1])
            opt.zero_grad()
            loss = batch_loss(case, net(x), y)
            loss.backward()
            opt.step()
            rel, norm, ab = compare(ours, linears, floor)
            loss_rel = abs(ours["loss"] - loss.item()) / max(abs(loss.item()), 1e-30)
            steps.append({"max_rel": rel, "max_rel_norm": norm, "max_abs": ab,
                          "loss_rel": loss_rel})
        end = torch.cat([p.detach().flatten() for p in net.parameters()])
        change = ((end - start).norm() / start.norm()).item()
        results.append({"name": case["name"], "relative_change": change, "steps": steps})
    print(json.dumps({"cases": results}))


if __name__ == "__main__":
    main()

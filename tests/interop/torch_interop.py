#!/usr/bin/python3
"""PyTorch and NumPy's side of tests/interop/torch_test.cpp. Each command prints one JSON object.

    torch_interop.py data DIR           training and test arrays (.npy) for the tests to train on
    torch_interop.py ours DIR CASES     our model files opened in PyTorch: CASES is a JSON list of
                                        {"model", "x", "predictions"}; reports per case the largest
                                        |ours - torch| over the outputs, whether save(load(f)) gives
                                        f's bytes back, and whether load_state_dict on a plain
                                        nn.Sequential takes the file's tensors as they are
    torch_interop.py make DIR           PyTorch models saved with backprop_torch.save, test arrays,
                                        and what PyTorch computes on them (outputs, loss, accuracy,
                                        one full-batch SGD step for --init-from)
    torch_interop.py compare DIR CASES  {"predictions", "expected"} pairs of .npy files: largest
                                        |difference| and how many predicted classes differ
    torch_interop.py errors DIR         what backprop_torch refuses, with its messages

Only this script and backprop_torch use torch; the C++ test asserts on the numbers printed.
"""

import json
import os
import sys

import numpy as np


def rng(seed):
    return np.random.default_rng(seed)


def save(path, a):
    np.save(path, a)
    return path


# ---------------------------------------------------------------------------------------------
# data


def blobs(r, n, d, k, scale):
    """k Gaussian classes in d dimensions, features on very different scales (so standardising
    matters), labels int64."""
    centres = r.normal(size=(k, d)) * 2.0
    y = r.integers(0, k, size=n)
    x = centres[y] + r.normal(size=(n, d))
    return (x * scale).astype(np.float32), y.astype(np.int64)


def cmd_data(out):
    r = rng(5)
    scale = np.geomspace(0.01, 100, 12)
    x, y = blobs(r, 1400, 12, 3, scale)
    save(f"{out}/cls_train_x.npy", x[:400])
    save(f"{out}/cls_train_y.npy", y[:400])
    save(f"{out}/cls_test_x.npy", x[400:])
    save(f"{out}/cls_test_y.npy", y[400:])
    # regression: two targets from a smooth function of the features
    xr = r.normal(size=(1400, 6)).astype(np.float64)
    yr = np.stack([np.sin(xr[:, 0]) + 0.5 * xr[:, 1], xr[:, 2] * xr[:, 3] - xr[:, 4]], axis=1)
    save(f"{out}/reg_train_x.npy", xr[:400])
    save(f"{out}/reg_train_y.npy", yr[:400].astype(np.float32))
    save(f"{out}/reg_test_x.npy", xr[400:])
    # images: 6x6 uint8, 4 classes (a bright quadrant per class)
    yi = r.integers(0, 4, size=1400)
    img = r.integers(0, 80, size=(1400, 6, 6)).astype(np.int32)
    for c in range(4):
        rows = slice(0, 3) if c < 2 else slice(3, 6)
        cols = slice(0, 3) if c % 2 == 0 else slice(3, 6)
        img[yi == c, rows, cols] += 170
    img = np.clip(img, 0, 255).astype(np.uint8)
    save(f"{out}/img_train_x.npy", img[:400])
    save(f"{out}/img_train_y.npy", yi[:400].astype(np.uint8))
    save(f"{out}/img_test_x.npy", img[400:])
    print(json.dumps({"ok": True}))


# ---------------------------------------------------------------------------------------------
# our models in PyTorch


def cmd_ours(out, cases_path):
    import torch
    from torch import nn

    import backprop_torch as bt

    torch.set_num_threads(1)
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        model = bt.load(case["model"])
        x = np.load(case["x"])
        ours = np.load(case["predictions"])
        with torch.no_grad():
            theirs = model(bt.preprocess(model, torch.from_numpy(x.astype(np.float32)))).numpy()
            raw = bt.with_preprocessing(model)(torch.from_numpy(x.astype(np.float32))).numpy()
        # The file as it is, into an nn.Sequential written by hand from its metadata.
        meta, tensors = bt.read_safetensors(case["model"])
        layers = json.loads(meta["layers"])
        plain = nn.Sequential(*[m for i in range(len(layers) - 1)
                                for m in (nn.Linear(layers[i], layers[i + 1]), nn.Identity())])
        missing, unexpected = plain.load_state_dict(tensors, strict=True)
        state_dict_ok = not missing and not unexpected and all(
            torch.equal(plain.state_dict()[k], tensors[k]) for k in tensors)
        copy = f"{out}/roundtrip_{len(results)}.safetensors"
        bt.save(model, copy)
        with open(case["model"], "rb") as a, open(copy, "rb") as b:
            same_bytes = a.read() == b.read()
        results.append({
            "model": os.path.basename(case["model"]),
            "examples": int(x.shape[0]),
            "max_abs": float(np.abs(ours.astype(np.float64) - theirs).max()),
            "max_abs_with_preprocessing_module": float(np.abs(ours.astype(np.float64) - raw).max()),
            "shape_ok": list(ours.shape) == list(theirs.shape),
            "same_bytes": same_bytes,
            "state_dict_ok": bool(state_dict_ok),
            "modules": [type(m).__name__ for m in model],
        })
    print(json.dumps({"cases": results}))


# ---------------------------------------------------------------------------------------------
# PyTorch models here


def train_a_little(model, x, target, loss_fn, steps=60):
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), target).backward()
        opt.step()


def cmd_make(out):
    import torch
    from torch import nn
    from torch.nn import functional as F

    import backprop_torch as bt

    torch.manual_seed(3)
    torch.set_num_threads(1)
    r = rng(9)
    scale = np.geomspace(0.1, 50, 8)
    x_all, y_all = blobs(r, 1300, 8, 3, scale)
    x_train, y_train, x_test, y_test = x_all[:300], y_all[:300], x_all[300:], y_all[300:]
    save(f"{out}/test_x.npy", x_test)
    save(f"{out}/test_y.npy", y_test)
    mean = x_train.mean(0)
    std = x_train.std(0)
    shift, scale_pre = mean.astype(np.float32), (1 / std).astype(np.float32)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    expected = {}

    def record(name, model, loss_of_outputs, classify):
        """Saves what PyTorch computes on the test set for the model file `name`."""
        with torch.no_grad():
            outputs = model(torch.from_numpy(x_test))
        save(f"{out}/{name}_expected.npy", outputs.numpy())
        entry = {"loss": float(loss_of_outputs(outputs))}
        if classify:
            entry["accuracy"] = float((outputs.argmax(1).numpy() == y_test).mean())
        expected[name] = entry

    # (a) tanh hidden, softmax output, standardisation, class names that are words.
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3),
                        nn.Softmax(dim=1))
    full = nn.Sequential(bt.Standardize(shift, scale_pre), net)
    train_a_little(full, xt, yt, lambda p, y: F.nll_loss(torch.log(p), y))
    full.eval()
    bt.save(full, f"{out}/words.safetensors", class_names=["cat", "dog", "bird"])
    record("words", full, lambda p: F.nll_loss(torch.log(p), torch.from_numpy(y_test)), True)

    # (b) ReLU hidden, sigmoid output with cross-entropy (per output, summed), no preprocessing.
    net = nn.Sequential(nn.Linear(8, 10), nn.ReLU(), nn.Linear(10, 3), nn.Sigmoid())
    onehot = F.one_hot(yt, 3).float()
    xs = torch.from_numpy(((x_train - shift) * scale_pre).astype(np.float32))
    train_a_little(net, xs, onehot,
                   lambda p, y: F.binary_cross_entropy(p, y, reduction="sum") / len(y))
    net.eval()
    bt.save(net, f"{out}/sigmoid.safetensors")
    xtest_s = ((x_test - shift) * scale_pre).astype(np.float32)
    save(f"{out}/test_x_standardized.npy", xtest_s)
    with torch.no_grad():
        outputs = net(torch.from_numpy(xtest_s))
    save(f"{out}/sigmoid_expected.npy", outputs.numpy())
    t = F.one_hot(torch.from_numpy(y_test), 3).float()
    expected["sigmoid"] = {
        "loss": float(F.binary_cross_entropy(outputs, t, reduction="sum") / len(t)),
        "accuracy": float((outputs.argmax(1).numpy() == y_test).mean()),
    }

    # (c) regression: leaky ReLU (slope 0.1) hidden, no output activation, two targets.
    net = nn.Sequential(nn.Linear(8, 12), nn.LeakyReLU(0.1), nn.Linear(12, 2))
    targets = torch.stack([xs[:, 0] - xs[:, 1], xs[:, 2] * 0.5], 1)
    train_a_little(net, xs, targets, lambda p, y: 0.5 * ((p - y) ** 2).sum(1).mean())
    net.eval()
    bt.save(net, f"{out}/regress.safetensors", label_columns=["first", "second"])
    with torch.no_grad():
        outputs = net(torch.from_numpy(xtest_s))
    save(f"{out}/regress_expected.npy", outputs.numpy())

    # (d) --init-from: a softmax model with default class names and standardisation, and one
    # full-batch SGD step (lr 0.1, cross-entropy averaged over the batch) from it.
    net = nn.Sequential(nn.Linear(8, 9), nn.Sigmoid(), nn.Linear(9, 3), nn.Softmax(dim=1))
    full = nn.Sequential(bt.Standardize(shift, scale_pre), net)
    train_a_little(full, xt, yt, lambda p, y: F.nll_loss(torch.log(p), y), steps=20)
    bt.save(full, f"{out}/init.safetensors")
    x64, y64 = x_train[:64], y_train[:64]
    save(f"{out}/step_x.npy", x64)
    save(f"{out}/step_y.npy", y64)
    logits_net = nn.Sequential(bt.Standardize(shift, scale_pre), *list(net)[:-1])
    opt = torch.optim.SGD(logits_net.parameters(), lr=0.1)
    opt.zero_grad()
    loss = F.cross_entropy(logits_net(torch.from_numpy(x64)), torch.from_numpy(y64))
    loss.backward()
    opt.step()
    bt.save(full, f"{out}/init_after_step.safetensors")
    expected["init"] = {"loss_before_step": float(loss)}

    with open(f"{out}/expected.json", "w") as f:
        json.dump(expected, f)
    print(json.dumps(expected))


def cmd_compare(cases_path):
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for case in cases:
        ours = np.load(case["predictions"]).astype(np.float64)
        theirs = np.load(case["expected"]).astype(np.float64)
        same_shape = ours.shape == theirs.shape
        results.append({
            "max_abs": float(np.abs(ours - theirs).max()) if same_shape else float("inf"),
            "same_shape": same_shape,
            "dtype": str(np.load(case["predictions"]).dtype),
            "argmax_differs": int((ours.argmax(1) != theirs.argmax(1)).sum()) if same_shape else -1,
        })
    print(json.dumps({"cases": results}))


# ---------------------------------------------------------------------------------------------
# what the module refuses


def cmd_errors(out):
    import torch
    from torch import nn

    import backprop_torch as bt

    def message(f):
        try:
            f()
        except ValueError as e:
            return str(e)
        return ""

    lin = lambda i, o: nn.Linear(i, o)  # noqa: E731
    nan_net = nn.Sequential(lin(2, 2), nn.Sigmoid(), lin(2, 2), nn.Softmax(dim=1))
    with torch.no_grad():
        nan_net[0].weight[0, 0] = float("nan")
    with open(f"{out}/not_a_model.safetensors", "wb") as f:
        header = b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
        f.write(len(header).to_bytes(8, "little") + header + b"\0\0\0\0")
    cases = {
        "gelu": lambda: bt.save(nn.Sequential(lin(2, 3), nn.GELU(), lin(3, 2)), f"{out}/x.st"),
        "mixed_hidden": lambda: bt.save(
            nn.Sequential(lin(2, 3), nn.Tanh(), lin(3, 3), nn.ReLU(), lin(3, 2)), f"{out}/x.st"),
        "softmax_hidden": lambda: bt.save(
            nn.Sequential(lin(2, 3), nn.Softmax(dim=1), lin(3, 2)), f"{out}/x.st"),
        "tanh_output": lambda: bt.save(nn.Sequential(lin(2, 3), nn.Tanh()), f"{out}/x.st"),
        "log_softmax_output": lambda: bt.save(
            nn.Sequential(lin(2, 3), nn.LogSoftmax(dim=1)), f"{out}/x.st"),
        "slope_out_of_range": lambda: bt.save(
            nn.Sequential(lin(2, 3), nn.LeakyReLU(1.5), lin(3, 2)), f"{out}/x.st"),
        "widths_do_not_chain": lambda: bt.save(nn.Sequential(lin(2, 3), nn.Tanh(), lin(4, 2)),
                                               f"{out}/x.st"),
        "class_names_count": lambda: bt.save(nn.Sequential(lin(2, 3), nn.Softmax(dim=1)),
                                             f"{out}/x.st", class_names=["a", "b"]),
        "cross_entropy_on_identity": lambda: bt.save(nn.Sequential(lin(2, 3)), f"{out}/x.st",
                                                     loss="cross-entropy"),
        "nan_weight": lambda: bt.save(nan_net, f"{out}/x.st"),
        "load_not_a_model": lambda: bt.load(f"{out}/not_a_model.safetensors"),
    }
    result = {name: message(f) for name, f in cases.items()}
    result["nothing_written"] = not os.path.exists(f"{out}/x.st")
    print(json.dumps(result))


def main():
    cmd = sys.argv[1]
    if cmd == "data":
        cmd_data(sys.argv[2])
    elif cmd == "ours":
        cmd_ours(sys.argv[2], sys.argv[3])
    elif cmd == "make":
        cmd_make(sys.argv[2])
    elif cmd == "compare":
        cmd_compare(sys.argv[2])
    elif cmd == "errors":
        cmd_errors(sys.argv[2])
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()

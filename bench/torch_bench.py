#!/usr/bin/python3
"""PyTorch doing the same work as backprop's training and inference benchmarks (bench/run.py).

  torch_bench.py train --net a|b|c --threads T --epochs E [--lr η] [--seed S] [--data DIR]
  torch_bench.py infer --threads T [--batch 1000] [--reps 5] [--min-seconds 0.2] [--data DIR]

Networks (as `backprop train` builds them; init as its `--init auto`: Glorot uniform for sigmoid
nets, He normal N(0, 2/I) for ReLU ones; biases zero):
  a  784-30-10, sigmoid hidden, sigmoid output, quadratic loss ½‖a − y‖² (batch mean), batch 10
  b  784-128-10, sigmoid hidden, softmax output, cross-entropy, batch 64
  c  784-1024-1024-10, ReLU hidden, softmax output, cross-entropy, batch 256
Training: plain SGD (no momentum, no weight decay); the whole training set preloaded as one float
tensor scaled to [0, 1]; no DataLoader; each epoch a fresh permutation (drawn before the clock
starts, as backprop shuffles before its epoch clock), batches gathered from it by indexing, the
last batch of an epoch smaller. The timed loop is forward, loss, backward, step, and nothing else
(backprop also tallies running loss and accuracy per batch, so the comparison favours PyTorch).
Inference: network b with its softmax, in inference mode, on the first `--batch` test images.

Prints JSON lines: "torch_info" (versions, threads, the BLAS library loaded and, for OpenBLAS, the
kernel it picked), then "torch_epoch" per epoch (with the test accuracy, measured after the epoch's
clock stops) and "torch_train", or "torch_infer".
"""

import argparse
import ctypes
import gzip
import json
import os
import sys
import time

import numpy as np
import torch

NETS = {
    "a": {"layers": [784, 30, 10], "hidden": "sigmoid", "output": "sigmoid", "loss": "quadratic",
          "batch": 10, "lr": 3.0},
    "b": {"layers": [784, 128, 10], "hidden": "sigmoid", "output": "softmax",
          "loss": "cross-entropy", "batch": 64, "lr": 0.5},
    "c": {"layers": [784, 1024, 1024, 10], "hidden": "relu", "output": "softmax",
          "loss": "cross-entropy", "batch": 256, "lr": 0.05},
}


def emit(obj):
    print(json.dumps(obj), flush=True)


def read_idx(path):
    """An IDX file (gzip or raw) as a numpy array of its declared shape (u8 data only)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SystemExit(f"torch_bench: {path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) != offset + count:
        raise SystemExit(f"torch_bench: {path}: {len(data) - offset} data bytes, "
                         f"the header says {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"torch_bench: no {stem}[.gz] in {data_dir}")


def load(data_dir, split):
    x = read_idx(find(data_dir, f"{split}-images-idx3-ubyte"))
    y = read_idx(find(data_dir, f"{split}-labels-idx1-ubyte"))
    x = torch.from_numpy(x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255))
    return x.contiguous(), torch.from_numpy(y.astype(np.int64))


def build(spec):
    layers, mods = spec["layers"], []
    for i in range(len(layers) - 1):
        lin = torch.nn.Linear(layers[i], layers[i + 1])
        with torch.no_grad():
            if spec["hidden"] == "relu":
                torch.nn.init.normal_(lin.weight, 0.0, (2.0 / layers[i]) ** 0.5)
            else:
                torch.nn.init.xavier_uniform_(lin.weight)
            lin.bias.zero_()
        mods.append(lin)
        last = i == len(layers) - 2
        act = spec["output"] if last else spec["hidden"]
        if act == "sigmoid":
            mods.append(torch.nn.Sigmoid())
        elif act == "relu":
            mods.append(torch.nn.ReLU())
        # softmax output: the network emits logits; cross_entropy applies log-softmax.
    return torch.nn.Sequential(*mods)


def blas_info():
    """The BLAS shared object this process loaded, and OpenBLAS's chosen kernel if it is one."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "blas" in os.path.basename(path) or "openblas" in path or "blis" in path:
                libs.add(path)
    info = {"blas_libraries": sorted(libs)}
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["openblas_core"] = lib.openblas_get_corename().decode()
            lib.openblas_get_num_threads.restype = ctypes.c_int
            info["openblas_threads"] = lib.openblas_get_num_threads()
            break
        except (OSError, AttributeError):
            continue
    return info


def train(args):
    spec = dict(NETS[args.net])
    if args.lr is not None:
        spec["lr"] = args.lr
    torch.manual_seed(args.seed)
    x, labels = load(args.data, "train")
    xt, labels_t = load(args.data, "t10k")
    n, bs = x.shape[0], spec["batch"]
    y = torch.nn.functional.one_hot(labels, 10).float() if spec["loss"] == "quadratic" else labels
    model = build(spec)
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"])
    if spec["loss"] == "quadratic":
        def loss_fn(out, target):
            return 0.5 * (out - target).pow(2).sum(dim=1).mean()
    else:
        loss_fn = torch.nn.functional.cross_entropy
    gen = torch.Generator().manual_seed(args.seed)
    best, accs = 0.0, []
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        t0 = time.perf_counter()
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            out = model(x[idx])
            loss = loss_fn(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t0
        best = max(best, n / seconds)
        if not torch.isfinite(loss):
            raise SystemExit(f"torch_bench: net {args.net}: the loss is not finite "
                             f"in epoch {epoch}")
        with torch.no_grad():  # after the clock, as backprop's --eval-test-each-epoch
            acc = float((model(xt).argmax(dim=1) == labels_t).float().mean())
        emit({"kind": "torch_epoch", "net": args.net, "epoch": epoch, "seconds": seconds,
              "samples_per_second": n / seconds, "last_batch_loss": float(loss),
              "test_accuracy": acc})
        accs.append(acc)
    emit({"kind": "torch_train", "net": args.net, "threads": torch.get_num_threads(),
          "epochs": args.epochs, "lr": spec["lr"], "batch": bs, "test_accuracy": acc,
          "test_accuracy_per_epoch": accs,
          "samples_per_second_best": best})


def infer(args):
    spec = NETS["b"]
    torch.manual_seed(args.seed)
    xt, _ = load(args.data, "t10k")
    if args.batch > xt.shape[0]:
        raise SystemExit(f"torch_bench: the test set holds {xt.shape[0]} images, "
                         "fewer than --batch")
    xb = xt[:args.batch].contiguous()
    model = torch.nn.Sequential(build(spec), torch.nn.Softmax(dim=1)).eval()
    per_call = []
    with torch.inference_mode():
        model(xb)
        batch = 1
        while True:  # calls between clock reads: a batch lasts >= 20 µs
            t0 = time.perf_counter()
            for _ in range(batch):
                model(xb)
            if time.perf_counter() - t0 >= 20e-6:
                break
            batch *= 2
        for _ in range(args.reps):
            calls, t0 = 0, time.perf_counter()
            while True:
                for _ in range(batch):
                    model(xb)
                calls += batch
                s = time.perf_counter() - t0
                if s >= args.min_seconds:
                    break
            per_call.append(s / calls)
    per_call.sort()
    emit({"kind": "torch_infer", "threads": torch.get_num_threads(), "batch": args.batch,
          "samples_per_second": args.batch / per_call[0],
          "samples_per_second_median": args.batch / per_call[len(per_call) // 2],
          "reps": args.reps})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["train", "infer"])
    p.add_argument("--net", choices=sorted(NETS), default="b")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=0.2)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args()
    if args.threads < 1 or args.epochs < 1 or args.batch < 1 or args.reps < 1:
        p.error("--threads, --epochs, --batch and --reps must be >= 1")
    torch.set_num_threads(args.threads)
    info = {"kind": "torch_info", "torch": torch.__version__, "threads": torch.get_num_threads(),
            "env": {k: os.environ.get(k) for k in
                    ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                     "LD_LIBRARY_PATH")}}
    info.update(blas_info())
    emit(info)
    (train if args.mode == "train" else infer)(args)


if __name__ == "__main__":
    sys.exit(main())

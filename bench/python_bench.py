#!/usr/bin/python3
"""backprop.MLPClassifier against the CLI, scikit-learn's MLPClassifier and a PyTorch loop.

  python_bench.py [--build DIR] [--threads T] [--epochs E] [--nets abc] [--sklearn-rows N]
                  [--repeats R] [--data DIR] [--output FILE]

Fashion-MNIST training on the networks of bench/run.py (plain SGD, no momentum or decay):
  a  784-30-10, sigmoid hidden, sigmoid output, quadratic loss, η = 3, batch 10
  b  784-128-10, sigmoid hidden, softmax output, cross-entropy, η = 0.5, batch 64
  c  784-1024-1024-10, ReLU hidden, softmax output, cross-entropy, η = 0.05, batch 256
Each figure is training samples per second, the best epoch of a run, all in one run of this
script on the same machine, with the same thread count:
  python   backprop.MLPClassifier(...).fit(X, y) on the uint8 images (scaled by 1/255 as the CLI
           scales IDX images); the library's own epoch clock (history_), and the whole fit()
           call's wall time (conversion, setup and the final evaluation included) as a check;
  cli      `backprop train --data DIR` with the same flags (its --log);
  torch    bench/torch_bench.py (a plain PyTorch loop, the one bench/run.py runs);
  sklearn  sklearn.neural_network.MLPClassifier(solver="sgd", momentum=0, alpha=0,
           one epoch per partial_fit call, its BLAS limited to the same threads) on the first
           --sklearn-rows rows (it is slow); scikit-learn has no sigmoid output or quadratic loss, so for (a) it trains the
           same layers with softmax and log-loss (its only classification output).
The Python and CLI runs alternate --repeats times and each keeps its best, so that load from
other processes on the machine hits both alike. Prints a Markdown table (and writes it to
--output).
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

NETS = {
    "a": {"desc": "784-30-10 sigmoid/sigmoid, quadratic, SGD η=3, batch 10", "hidden": (30,),
          "activation": "sigmoid", "output": "sigmoid", "loss": "quadratic", "lr": 3.0,
          "batch": 10},
    "b": {"desc": "784-128-10 sigmoid/softmax, cross-entropy, SGD η=0.5, batch 64",
          "hidden": (128,), "activation": "sigmoid", "output": "softmax", "loss": "cross-entropy",
          "lr": 0.5, "batch": 64},
    "c": {"desc": "784-1024-1024-10 ReLU/softmax, cross-entropy, SGD η=0.05, batch 256",
          "hidden": (1024, 1024), "activation": "relu", "output": "softmax",
          "loss": "cross-entropy", "lr": 0.05, "batch": 256},
}


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir):
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        raise SystemExit(f"python_bench: no {stem}[.gz] in {data_dir}")
    x = read_idx(find("train-images-idx3-ubyte"))
    y = read_idx(find("train-labels-idx1-ubyte"))
    return np.ascontiguousarray(x.reshape(x.shape[0], -1)), y.astype(np.int64)


def ours_python(backprop, net, x, y, threads, epochs):
    spec = NETS[net]
    clf = backprop.MLPClassifier(hidden_layer_sizes=spec["hidden"], activation=spec["activation"],
                                 output=spec["output"], loss=spec["loss"], lr=spec["lr"],
                                 batch_size=spec["batch"], epochs=epochs, threads=threads)
    t0 = time.perf_counter()
    clf.fit(x, y)
    wall = time.perf_counter() - t0
    return {"samples_per_second": max(h["samples_per_second"] for h in clf.history_),
            "wall_samples_per_second": x.shape[0] * epochs / wall}


def ours_cli(cli, net, data_dir, threads, epochs):
    spec = NETS[net]
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cmd = [cli, "train", "--data", data_dir, "--hidden", ",".join(map(str, spec["hidden"])),
               "--activation", spec["activation"], "--output", spec["output"], "--loss",
               spec["loss"], "--lr", str(spec["lr"]), "--batch-size", str(spec["batch"]),
               "--epochs", str(epochs), "--threads", str(threads), "--quiet", "--no-save",
               "--log", log]
        subprocess.run(cmd, check=True, capture_output=True)
        with open(log) as f:
            return {"samples_per_second": max(json.loads(line)["samples_per_second"]
                                              for line in f if line.strip())}


def torch_loop(net, data_dir, threads, epochs):
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "torch_bench.py"), "train", "--net",
                        net, "--threads", str(threads), "--epochs", str(epochs), "--data",
                        data_dir], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(threads)))  # as bench/run.py
    if r.returncode != 0:
        return None
    for line in r.stdout.splitlines():
        obj = json.loads(line)
        if obj.get("kind") == "torch_train":
            return {"samples_per_second": obj["samples_per_second_best"]}
    return None


def sklearn_mlp(net, x, y, rows, epochs, threads):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    spec = NETS[net]
    xs = x[:rows].astype(np.float32) / np.float32(255)
    ys = y[:rows]
    clf = MLPClassifier(hidden_layer_sizes=spec["hidden"],
                        activation="logistic" if spec["activation"] == "sigmoid" else "relu",
                        solver="sgd", learning_rate_init=spec["lr"], batch_size=spec["batch"],
                        momentum=0.0, nesterovs_momentum=False, alpha=0.0, random_state=1)
    best = 0.0
    from threadpoolctl import threadpool_limits  # its BLAS gets the same thread count
    with warnings.catch_warnings(), threadpool_limits(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(epochs):
            t0 = time.perf_counter()
            clf.partial_fit(xs, ys, classes=np.arange(10)) if epoch == 0 else clf.partial_fit(xs, ys)
            best = max(best, rows / (time.perf_counter() - t0))
    return {"samples_per_second": best}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                   help="build folder holding python/backprop and the CLI (default build/release)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--nets", default="abc")
    p.add_argument("--sklearn-rows", type=int, default=6000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--output", default=None)
    args = p.parse_args()

    sys.path.insert(0, os.path.join(args.build, "python"))
    import backprop
    import sklearn
    cli = os.path.join(args.build, "backprop")
    x, y = load(args.data)
    rows = []
    for net in args.nets:
        py_best, py_wall, cli_best = 0.0, 0.0, 0.0
        for _ in range(args.repeats):  # alternating, each keeps its best
            r = ours_python(backprop, net, x, y, args.threads, args.epochs)
            py_best = max(py_best, r["samples_per_second"])
            py_wall = max(py_wall, r["wall_samples_per_second"])
            cli_best = max(cli_best, ours_cli(cli, net, args.data, args.threads,
                                              args.epochs)["samples_per_second"])
        th = torch_loop(net, args.data, args.threads, args.epochs)
        sk = sklearn_mlp(net, x, y, min(args.sklearn_rows, x.shape[0]), args.epochs, args.threads)
        rows.append({"net": net, "python": py_best, "python_wall": py_wall, "cli": cli_best,
                     "torch": th["samples_per_second"] if th else None,
                     "sklearn": sk["samples_per_second"]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    def f(v):
        return "-" if v is None else f"{v:,.0f}"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"`bench/python_bench.py {' '.join(sys.argv[1:])}`, {now}, {platform.node() or 'host'}, "
        f"{os.cpu_count()} CPUs, {args.threads} threads, {args.epochs} epochs "
        f"(best epoch; Python and CLI alternated {args.repeats}×), backprop "
        f"{backprop.__version__} ({backprop._core.kernels()} kernels), scikit-learn "
        f"{sklearn.__version__} on {args.sklearn_rows:,} rows.",
        "",
        "| training, samples/s | backprop.MLPClassifier | backprop CLI | Python / CLI | "
        "sklearn MLPClassifier | Python / sklearn | PyTorch loop |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| ({r['net']}) {NETS[r['net']]['desc']} | {f(r['python'])} "
                     f"(whole fit() {f(r['python_wall'])}) | {f(r['cli'])} | "
                     f"{r['python'] / r['cli']:.3f} | {f(r['sklearn'])} | "
                     f"**{r['python'] / r['sklearn']:.0f}×** | {f(r['torch'])} |")
    table = "\n".join(lines)
    print(table)
    if args.output:
        with open(args.output, "w") as out:
            out.write(table + "\n")


if __name__ == "__main__":
    main()

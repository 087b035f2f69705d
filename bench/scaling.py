#!/usr/bin/python3
"""`make bench-scaling`: training and inference throughput against the thread count, ours and
PyTorch's, on this machine, as one table.

Builds the `bench` preset as bench/run.py does (build/bench), then for N = 1, 2, 4, ... up to the
core count (and the core count itself), and for `--threads 0`:
  (a) 784-30-10 sigmoid/sigmoid, quadratic, SGD η=3, batch 10
  (b) 784-128-10 sigmoid/softmax, cross-entropy, SGD η=0.5, batch 64
  (c) 784-1024-1024-10 ReLU/softmax, cross-entropy, Adam η=1e-3, batch 256
      (issue 13's (c): Adam, so that the optimizer's update is part of what scales)
trains on Fashion-MNIST (/usr/share/datasets/fashion-mnist) with `backprop train --threads N`
for --epochs epochs (2) and takes the best epoch's samples/s from --log; and
  (d) inference of (b)'s network at batch 1000 (bench/infer_bench.cpp, best of 5 repetitions).
PyTorch runs the same configs with torch.set_num_threads(N) (bench/torch_bench.py for (a), (b)
and (d); (c) with Adam by this script's own --torch-worker mode, which reuses torch_bench.py's
data loading and network construction), on Debian's OpenMP OpenBLAS as bench/run.py runs it.

Prints the CPU model, core count and date, the table (markdown) and writes it to
bench/results/scaling.md (raw JSON lines in bench/results/scaling.jsonl). `--threads 0` is ours
only (PyTorch has no "as many as help"); for (d) the "0" column is infer_bench at the core count,
which is what `set_num_threads(0)` resolves to. Budget: an estimated 4 minutes on a 16-core
machine (not yet run on one; (c) at one thread dominates, about 30 s for ours and PyTorch's each);
5 minutes on the 2-core development machine under load.

  bench/scaling.py [--threads 1,2,4,...] [--configs a,b,c,d] [--epochs 2] [--no-torch]
                   [--no-build] [--cli PATH] [--infer-bench PATH] [--out FILE] [--label TEXT]
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py: run(), build(), cpu_model(), torch_variants())

ROOT = bench.ROOT
DATA = bench.DATA
PYTHON = bench.PYTHON
RESULTS = bench.RESULTS

CONFIGS = {
    "a": {"desc": "784-30-10 sigmoid/sigmoid, quadratic, SGD η=3, batch 10",
          "flags": ["--layers", "784,30,10", "--activation", "sigmoid", "--output", "sigmoid",
                    "--loss", "quadratic", "--batch-size", "10", "--lr", "3"]},
    "b": {"desc": "784-128-10 sigmoid/softmax, cross-entropy, SGD η=0.5, batch 64",
          "flags": ["--layers", "784,128,10", "--activation", "sigmoid", "--output", "softmax",
                    "--loss", "cross-entropy", "--batch-size", "64", "--lr", "0.5"]},
    "c": {"desc": "784-1024-1024-10 ReLU/softmax, cross-entropy, Adam η=1e-3, batch 256",
          "flags": ["--layers", "784,1024,1024,10", "--activation", "relu", "--output",
                    "softmax", "--loss", "cross-entropy", "--batch-size", "256", "--optimizer",
                    "adam", "--lr", "0.001"]},
    "d": {"desc": "inference of (b)'s network, batch 1000"},
}
RAW = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads(n):
    out, t = [], 1
    while t < n:
        out.append(t)
        t *= 2
    out.append(n)
    return out


def ours_train(cli, config, threads, epochs, save=None):
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "log.jsonl")
        cmd = [cli, "train", "--data", DATA, *CONFIGS[config]["flags"], "--epochs", str(epochs),
               "--seed", "1", "--threads", str(threads), "--quiet", "--log", log_path]
        cmd += ["--save", save] if save else ["--no-save"]
        r = bench.run(cmd, env=bench.base_env(max(threads, 1)), timeout=900)
        if r.rc != 0:
            bench.fail_note(f"backprop train ({config}, --threads {threads})", r)
            return None
        with open(log_path) as f:
            epochs_log = [json.loads(line) for line in f if line.strip()]
    best = max(e["samples_per_second"] for e in epochs_log)
    RAW.append({"kind": "ours_train", "config": config, "threads": threads,
                "samples_per_second": best,
                "per_epoch": [e["samples_per_second"] for e in epochs_log]})
    return best


def ours_infer(exe, model, threads, reps):
    if not model or not os.path.exists(model) or not os.path.exists(exe):
        return None
    r = bench.run([exe, "--model", model,
                   "--images", os.path.join(DATA, "t10k-images-idx3-ubyte.gz"),
                   "--labels", os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"),
                   "--batch", "1000", "--threads", str(threads), "--reps", str(reps),
                   "--min-seconds", "0.2"], env=bench.base_env(threads), timeout=300)
    if r.rc != 0:
        bench.fail_note(f"infer_bench ({threads} threads)", r)
        return None
    for d in r.lines():
        if d.get("kind") == "infer":
            RAW.append(dict(d, kind="ours_infer", threads=threads))
            return d["samples_per_second"]
    return None


def torch_env(threads):
    # The first of bench/run.py's variants: OpenMP OpenBLAS, the environment as it is.
    return bench.torch_variants(threads)[0][1]


def torch_result(cmd, threads, key):
    r = bench.run(cmd, env=torch_env(threads), timeout=900)
    if r.rc != 0:
        bench.fail_note(f"PyTorch {' '.join(cmd[2:4])} ({threads} threads)", r)
        return None
    for d in r.lines():
        if d.get("kind") in ("torch_train", "torch_infer"):
            RAW.append(dict(d, threads_asked=threads))
            return d.get(key)
    return None


def torch_train(config, threads, epochs):
    if config == "c":
        cmd = [PYTHON, os.path.abspath(__file__), "--torch-worker", "--threads", str(threads),
               "--epochs", str(epochs)]
    else:
        cmd = [PYTHON, os.path.join(HERE, "torch_bench.py"), "train", "--net", config,
               "--threads", str(threads), "--epochs", str(epochs), "--data", DATA]
    return torch_result(cmd, threads, "samples_per_second_best")


def torch_infer(threads, reps):
    cmd = [PYTHON, os.path.join(HERE, "torch_bench.py"), "infer", "--batch", "1000", "--reps",
           str(reps), "--threads", str(threads), "--data", DATA]
    return torch_result(cmd, threads, "samples_per_second")


def torch_worker(args):
    """(c) with Adam in PyTorch: torch_bench.py's data and network, its loop, Adam's step."""
    import torch
    import torch_bench as tb

    threads = int(args.threads)
    torch.set_num_threads(threads)
    spec = dict(tb.NETS["c"])
    torch.manual_seed(1)
    x, labels = tb.load(DATA, "train")
    n, bs = x.shape[0], spec["batch"]
    model = tb.build(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    best = 0.0
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=gen)
        t0 = time.perf_counter()
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        best = max(best, n / (time.perf_counter() - t0))
    tb.emit({"kind": "torch_train", "net": "c-adam", "threads": torch.get_num_threads(),
             "epochs": args.epochs, "samples_per_second_best": best})
    return 0


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v / 1000:,.1f}k" if v < 1e7 else f"{v / 1e6:,.1f}M"


def table(res, configs, threads, with_torch):
    cols = [str(t) for t in threads] + ["0 (auto)"]
    lines = ["| config | | " + " | ".join(cols) + " | auto / best N | worst step down |",
             "|---|---|" + "---|" * len(cols) + "---|---|"]
    verdicts = []
    for c in configs:
        ours = [res.get((c, "ours", t)) for t in threads]
        auto = res.get((c, "ours", 0))
        known = [v for v in ours if v]
        best = max(known) if known else None
        auto_ratio = auto / best if auto and best else None
        # The largest fall from the best of the smaller thread counts: 0% when non-decreasing.
        drop, run_best = 0.0, None
        for v in ours:
            if v and run_best:
                drop = max(drop, 1 - v / run_best)
            if v:
                run_best = max(run_best or 0, v)
        lines.append(f"| ({c}) | ours | " + " | ".join(fmt(v) for v in ours) + f" | {fmt(auto)} | "
                     f"{'n/a' if auto_ratio is None else f'{auto_ratio:.2f}'} | "
                     f"{drop:.0%} |")
        verdicts.append((c, auto_ratio, drop))
        if with_torch:
            theirs = [res.get((c, "torch", t)) for t in threads]
            lines.append("| | PyTorch | " + " | ".join(fmt(v) for v in theirs) + " | – | | |")
            ratio = [f"{o / p:.2f}×" if o and p else "n/a" for o, p in zip(ours, theirs)]
            lines.append("| | ours / PyTorch | " + " | ".join(ratio) + " | – | | |")
    return lines, verdicts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts (default 1, 2, 4, ... and the core count)")
    p.add_argument("--configs", default="a,b,c,d")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--reps", type=int, default=5, help="inference repetitions (best counts)")
    p.add_argument("--no-torch", action="store_true", help="ours only")
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--cli", default=bench.CLI, help="the backprop binary to time")
    p.add_argument("--infer-bench", default=os.path.join(bench.BIN, "infer_bench"))
    p.add_argument("--out", default=os.path.join(RESULTS, "scaling.md"))
    p.add_argument("--label", default="", help="a line under the title (e.g. the commit)")
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    n_cores = cores()
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else default_threads(n_cores))
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c!r}: expected a, b, c or d")
    if any(t < 1 for t in threads) or args.epochs < 1:
        p.error("--threads must list counts >= 1, --epochs must be >= 1")
    t_start = time.monotonic()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [f"CPU: {bench.cpu_model()}, {n_cores} cores; {when}"]
    if args.label:
        head.append(args.label)
    for line in head:
        log(line)
    if not args.no_build:
        bench.build(n_cores)
    res = {}
    os.makedirs(RESULTS, exist_ok=True)
    model_b = os.path.join(RESULTS, "scaling_model_b.safetensors")
    if os.path.exists(model_b):
        os.remove(model_b)
    for c in configs:
        if c == "d":
            continue
        for t in threads + [0]:
            log(f"({c}) --threads {t}: backprop")
            save = model_b if c == "b" and t == threads[0] else None
            res[(c, "ours", t)] = ours_train(args.cli, c, t, args.epochs, save)
            if t > 0 and not args.no_torch:
                log(f"({c}) {t} threads: PyTorch")
                res[(c, "torch", t)] = torch_train(c, t, args.epochs)
    if "d" in configs:
        if not os.path.exists(model_b):
            ours_train(args.cli, "b", 1, 1, model_b)
        for t in threads + [0]:
            log(f"(d) {t or n_cores} threads: backprop")
            res[("d", "ours", t)] = ours_infer(args.infer_bench, model_b, t or n_cores, args.reps)
            if t > 0 and not args.no_torch:
                log(f"(d) {t} threads: PyTorch")
                res[("d", "torch", t)] = torch_infer(t, args.reps)
    lines, verdicts = table(res, configs, threads, not args.no_torch)
    md = ["# Scaling with the thread count", ""] + [f"- {h}" for h in head]
    md += [f"- ({c}) {CONFIGS[c]['desc']}" for c in configs]
    md += [f"- samples/s: training, the best of {args.epochs} epochs (`--log`); inference, the "
           f"best of {args.reps} repetitions. Columns: `--threads N` (PyTorch: "
           "`torch.set_num_threads(N)`); `0 (auto)`: ours at `--threads 0`. \"worst step down\": "
           "the largest fall below the best smaller N (0% = non-decreasing).",
           f"- wall time of this run: {time.monotonic() - t_start:.0f} s", ""]
    md += lines
    md.append("")
    text = "\n".join(md)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".jsonl", "w") as f:
        for d in RAW:
            f.write(json.dumps(d) + "\n")
    log(f"written: {os.path.relpath(args.out, ROOT)}")
    for c, auto_ratio, drop in verdicts:
        log(f"({c}): --threads 0 at {auto_ratio if auto_ratio is None else round(auto_ratio, 2)} "
            f"of the best N; largest step down {drop:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

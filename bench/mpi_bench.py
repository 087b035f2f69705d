#!/usr/bin/env python3
"""Data-parallel training on this machine: 2 MPI ranks x 1 thread against 1 process x 2 threads,
for networks (b) and (c) of bench/run.py on Fashion-MNIST, with the per-layer overlap of the
gradient sums on and off (--no-overlap). Throughput is the median samples/s of the epochs after the
first, read from --log. Writes bench/results/mpi.md and prints the same table.

    bench/mpi_bench.py [--epochs N] [--cli build/bench/backprop]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run import NETS  # noqa: E402  (the same network definitions as make bench)

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def train(cli, net, ranks, threads, epochs, overlap, log):
    flags = NETS[net]["flags"] + ["--lr", str(NETS[net]["lr"]), "--epochs", str(epochs),
                                  "--threads", str(threads), "--seed", "1", "--quiet", "--no-save",
                                  "--log", log]
    if not overlap:
        flags.append("--no-overlap")
    cmd = [cli, "train"] + flags
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--bind-to", "none"] + cmd
    env = dict(os.environ, **MPI_ENV)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"mpi_bench: {' '.join(cmd)} failed:\n{out.stderr}")
    rates = [json.loads(line)["samples_per_second"] for line in open(log)]
    accuracy = out.stdout.strip().splitlines()[-2] if out.stdout else ""
    return statistics.median(rates[1:] if len(rates) > 1 else rates), accuracy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "bench", "backprop"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        for net in ("b", "c"):
            one, _ = train(args.cli, net, 1, 2, args.epochs, True, log)
            two, _ = train(args.cli, net, 2, 1, args.epochs, True, log)
            two_sync, _ = train(args.cli, net, 2, 1, args.epochs, False, log)
            rows.append((net, one, two, two_sync))
    lines = ["| network | 1 process × 2 threads | 2 ranks × 1 thread | ratio | 2 ranks, no overlap |"
             " overlap saving |",
             "|---|---:|---:|---:|---:|---:|"]
    for net, one, two, sync in rows:
        lines.append(f"| ({net}) {NETS[net]['desc']} | {one:,.0f} | {two:,.0f} | {two / one:.2f}× | "
                     f"{sync:,.0f} | {100 * (two / sync - 1):+.1f}% |")
    text = "\n".join(lines) + "\n\nsamples/s, median of epochs 2.." + str(args.epochs) + "\n"
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "mpi.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

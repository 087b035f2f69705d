#!/usr/bin/env python3
"""Data-parallel training on this machine: 2 MPI ranks x 1 thread against 1 process x 2 threads,
for networks (b) and (c) of bench/run.py on Fashion-MNIST, with the per-layer overlap of the
gradient sums on and off (--no-overlap). Throughput is the median samples/s of the epochs after the
first, read from --log. Then, for network (b) on uncompressed copies of the files, 2 ranks with and
without --shard-data: throughput and each rank's peak resident memory. Writes bench/results/mpi.md
and prints the same tables.

    bench/mpi_bench.py [--epochs N] [--cli build/bench/backprop]
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run import DATA, NETS  # noqa: E402  (the same network definitions as make bench)

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}


# Runs the command given after it and writes its peak resident set (KiB) to the file named by
# RSS_DIR and the rank: each rank of mpirun runs this, so each rank's figure is its own.
RSS_WRAPPER = ("import os, resource, subprocess, sys\n"
               "code = subprocess.run(sys.argv[1:]).returncode\n"
               "rank = os.environ.get('OMPI_COMM_WORLD_RANK', '0')\n"
               "with open(os.path.join(os.environ['RSS_DIR'], 'rss.' + rank), 'w') as f:\n"
               "    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
               "sys.exit(code)\n")


def train(cli, net, ranks, threads, epochs, overlap, log, extra=(), rss_dir=None):
    flags = NETS[net]["flags"] + ["--lr", str(NETS[net]["lr"]), "--epochs", str(epochs),
                                  "--threads", str(threads), "--seed", "1", "--quiet", "--no-save",
                                  "--log", log] + list(extra)
    if not overlap:
        flags.append("--no-overlap")
    cmd = [cli, "train"] + flags
    if rss_dir is not None:
        cmd = [sys.executable, "-c", RSS_WRAPPER] + cmd
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--bind-to", "none"] + cmd
    env = dict(os.environ, **MPI_ENV)
    if rss_dir is not None:
        env["RSS_DIR"] = rss_dir
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
        # --shard-data, on uncompressed files (the ones a rank can read in part).
        raw = os.path.join(tmp, "raw")
        os.makedirs(raw)
        for name in os.listdir(DATA):
            if name.endswith(".gz"):
                with gzip.open(os.path.join(DATA, name)) as src, \
                        open(os.path.join(raw, name[:-3]), "wb") as dst:
                    dst.write(src.read())
        shard_rows = []
        for extra in ([], ["--shard-data"]):
            rss = os.path.join(tmp, "rss" + str(len(extra)))
            os.makedirs(rss)
            rate, _ = train(args.cli, "b", 2, 1, args.epochs, True, log,
                            ["--data", raw] + extra, rss)
            peaks = [int(open(os.path.join(rss, f)).read()) for f in sorted(os.listdir(rss))]
            shard_rows.append((" ".join(extra) or "every rank reads everything", rate, peaks))
    lines = ["| network | 1 process × 2 threads | 2 ranks × 1 thread | ratio | 2 ranks, no overlap |"
             " overlap saving |",
             "|---|---:|---:|---:|---:|---:|"]
    for net, one, two, sync in rows:
        lines.append(f"| ({net}) {NETS[net]['desc']} | {one:,.0f} | {two:,.0f} | {two / one:.2f}× | "
                     f"{sync:,.0f} | {100 * (two / sync - 1):+.1f}% |")
    text = "\n".join(lines) + "\n\nsamples/s, median of epochs 2.." + str(args.epochs) + "\n"
    lines = ["| (b), 2 ranks × 1 thread, uncompressed files | samples/s | peak RSS per rank (MiB) |",
             "|---|---:|---:|"]
    for what, rate, peaks in shard_rows:
        lines.append(f"| {what} | {rate:,.0f} | "
                     + " / ".join(f"{p / 1024:.0f}" for p in peaks) + " |")
    text += "\n" + "\n".join(lines) + "\n"
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "mpi.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

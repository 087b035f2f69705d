#!/usr/bin/env python3
"""The cost model of docs/distributed.md: data-parallel scaling of networks (b) and (c) from 2 to
64 nodes, from our measured single-node throughput and a ring all-reduce over 10 and 100 Gb/s.

    bench/scaling_model.py [--b SAMPLES_PER_S] [--c SAMPLES_PER_S]

Per step with global batch G on p nodes:
  compute      t_c = (G / p) / T            (T: one node's training samples/s at that batch)
  all-reduce   t_a = 2 (p-1)/p * S / bw + 2 (p-1) * alpha   (ring: reduce-scatter + all-gather)
  efficiency   E = t_c / (t_c + t_a)        (no overlap; the overlap hides at most the part of
                                             t_a that fits under the backward pass, ~2/3 of t_c)
S is the gradient in bytes (4 per parameter). 80% efficiency needs t_c >= 4 t_a, that is
G >= 4 p T t_a.
"""
import argparse

NETS = {  # parameters and the measured 2-thread throughput of `make bench` (README, 2026-11-28)
    "b": {"desc": "784-128-10, batch 64", "params": 784 * 128 + 128 + 128 * 10 + 10,
          "batch": 64, "T": 700_980},
    "c": {"desc": "784-1024-1024-10, batch 256",
          "params": 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10,
          "batch": 256, "T": 44_250},
}
LINKS = {"10 Gb/s": (10e9 / 8, 20e-6), "100 Gb/s": (100e9 / 8, 5e-6)}  # bytes/s, latency per hop
NODES = [2, 4, 8, 16, 32, 64]


def allreduce_seconds(p, size, bw, alpha):
    return 2 * (p - 1) / p * size / bw + 2 * (p - 1) * alpha


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--b", type=float, default=NETS["b"]["T"])
    ap.add_argument("--c", type=float, default=NETS["c"]["T"])
    args = ap.parse_args()
    NETS["b"]["T"], NETS["c"]["T"] = args.b, args.c
    for key, net in NETS.items():
        size = 4 * net["params"]
        print(f"\n({key}) {net['desc']}: {net['params']:,} parameters, {size / 1e6:.2f} MB of "
              f"gradient per step; one node {net['T']:,.0f} samples/s")
        print("| nodes | link | all-reduce | efficiency at " + str(net["batch"]) +
              " per node | global batch for 80% |")
        print("|---:|---|---:|---:|---:|")
        for p in NODES:
            for link, (bw, alpha) in LINKS.items():
                t_a = allreduce_seconds(p, size, bw, alpha)
                t_c = net["batch"] / net["T"]
                eff = t_c / (t_c + t_a)
                g80 = 4 * p * net["T"] * t_a
                print(f"| {p} | {link} | {t_a * 1e3:.2f} ms | {100 * eff:.0f}% | {g80:,.0f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""`make bench`: backprop against its peers on this machine, in one run, as one table.

Builds the Release benchmark targets (CMake preset `bench`, build/bench), then measures
  - the FMA peak (bench/peak.cpp) on 1 and 2 threads;
  - GEMM GFLOP/s on the MLP shapes in their three forms and 1024³: backprop (bench/gemm_bench.cpp),
    OpenBLAS, BLIS and oneDNN (bench/peers/, one program each), every program in its own process,
    the whole set repeated --rounds times, alternating programs, keeping each one's best;
  - Fashion-MNIST training samples/s, test accuracy and peak resident memory for networks (a)-(c)
    with the backprop CLI and with PyTorch (bench/torch_bench.py), and inference of (b) at batch
    1000 (bench/infer_bench.cpp against PyTorch);
and prints the table (markdown) and writes it to bench/results/bench.md, with every raw JSON line
in bench/results/raw.jsonl.

Peers run in variants, each peer's better figure counting: OpenBLAS and PyTorch with the
environment as it is and with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; BLIS as it detects
this CPU and with BLIS_ARCH_TYPE forcing its AVX-512 sub-configuration (skx). PyTorch runs on
Debian's OpenMP build of OpenBLAS (LD_LIBRARY_PATH), so torch.set_num_threads governs it.

A peer that is missing (not built, not importable, failing) shows as "n/a"; every subprocess has
a timeout. Figures are the best of the repetitions (GEMM, inference) or the best epoch (training).

  bench/run.py [--threads 1,2] [--rounds 2] [--reps 3] [--min-seconds 0.2] [--quick]
               [--skip-gemm] [--skip-train] [--no-build]
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench")
BIN = os.path.join(BUILD, "bench")
CLI = os.path.join(BUILD, "backprop")
RESULTS = os.path.join(ROOT, "bench", "results")
DATA = "/usr/share/datasets/fashion-mnist"
PYTHON = "/usr/bin/python3"  # Debian's: the one with python3-torch and python3-numpy
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Training runs, as `backprop train` flags; torch_bench.py's NETS mirror them.
NETS = {
    "a": {"desc": "784-30-10 sigmoid/sigmoid, quadratic, SGD η=3, batch 10",
          "layers": [784, 30, 10], "flags": ["--layers", "784,30,10", "--activation", "sigmoid",
                                             "--output", "sigmoid", "--loss", "quadratic",
                                             "--batch-size", "10"], "lr": 3.0, "target": 10.0},
    "b": {"desc": "784-128-10 sigmoid/softmax, cross-entropy, SGD η=0.5, batch 64",
          "layers": [784, 128, 10], "flags": ["--layers", "784,128,10", "--activation", "sigmoid",
                                              "--output", "softmax", "--loss", "cross-entropy",
                                              "--batch-size", "64"], "lr": 0.5, "target": 2.5},
    "c": {"desc": "784-1024-1024-10 ReLU/softmax, cross-entropy, SGD η=0.05, batch 256",
          "layers": [784, 1024, 1024, 10], "flags": ["--layers", "784,1024,1024,10",
                                                     "--activation", "relu", "--output",
                                                     "softmax", "--loss", "cross-entropy",
                                                     "--batch-size", "256"], "lr": 0.05,
          "target": 1.6},
}
INFER_TARGET = 1.4
MEMORY_TARGET = 1 / 3  # of (c)
GEMM_TARGET = 0.95
PEAK_TARGET = 0.85  # of the 2-thread peak, at 1024³
ACCURACY_POINTS = 0.5
TARGET_THREADS = 2  # the targets are at 2 threads

RAW = []  # every JSON line any benchmark printed, with the variant it ran as


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Result:
    def __init__(self, rc, out, err, seconds, maxrss_kib):
        self.rc, self.out, self.err = rc, out, err
        self.seconds, self.maxrss_kib = seconds, maxrss_kib

    def lines(self):
        out = []
        for line in self.out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out


def run(cmd, env=None, timeout=600, cwd=ROOT):
    """Runs cmd in its own process group with a timeout; returns its output, exit status and its
    own peak resident memory (wait4's rusage of that one child, in KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        try:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd,
                                 start_new_session=True)
        except OSError as e:
            return Result(127, "", str(e), 0.0, 0)
        rc, rusage = None, None
        while True:
            pid, status, rusage = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - t0 > timeout:
                os.killpg(p.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(p.pid, 0)
                rc = 124
                break
            time.sleep(0.02)
        p.returncode = rc
        seconds = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return Result(rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                      seconds, rusage.ru_maxrss if rusage else 0)


def fail_note(name, r):
    tail = (r.err.strip().splitlines() or ["(no output)"])[-1]
    what = "timed out" if r.rc == 124 else f"exit {r.rc}"
    log(f"  {name}: {what}: {tail}")


def build(jobs):
    log("build: cmake --preset bench && cmake --build --preset bench")
    for cmd in (["cmake", "--preset", "bench"],
                ["cmake", "--build", "--preset", "bench", "-j", str(jobs)]):
        r = run(cmd, timeout=1800)
        if r.rc != 0:
            sys.stderr.write(r.out[-4000:] + r.err[-4000:])
            raise SystemExit(f"bench/run.py: {' '.join(cmd)} failed (exit {r.rc})")


# ------------------------------------------------------------------------------------------------
# Machine


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_seconds():
    """(busy, steal) CPU seconds of the whole machine since boot (/proc/stat): busy is user, nice,
    system, irq and softirq time; steal is what the hypervisor gave to other guests."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    hz = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz


def debian_version():
    try:
        with open("/etc/debian_version") as f:
            return f.read().strip()
    except OSError:
        return "?"


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ------------------------------------------------------------------------------------------------
# Measurements


def base_env(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def unset_openblas(env):
    env = dict(env)
    for v in OPENBLAS_VARS:
        env.pop(v, None)
    return env


def peak(args):
    exe = os.path.join(BIN, "peak")
    r = run([exe, "--threads", ",".join(map(str, args.threads)), "--reps", str(max(args.reps, 5)),
             "--min-seconds", str(args.min_seconds)], timeout=120)
    out = {}
    for d in r.lines():
        RAW.append(d)
        if d.get("kind") == "peak":
            out[d["threads"]] = d
    if r.rc != 0:
        fail_note("peak", r)
    return out


def gemm_programs():
    """(library, variant, executable, env transform) for every GEMM program."""
    same = lambda env: env
    return [
        ("backprop", "", "gemm_bench", same),
        ("openblas", "env as is", "openblas_gemm", same),
        ("openblas", "OPENBLAS_CORETYPE/L2_SIZE unset", "openblas_gemm", unset_openblas),
        ("blis", "auto-detected", "blis_gemm", same),
        # BLIS 0.9's BLIS_ARCH_TYPE takes the arch_t number: 0 is skx, its AVX-512 configuration.
        ("blis", "BLIS_ARCH_TYPE=skx", "blis_gemm",
         lambda env: dict(env, BLIS_ARCH_TYPE="0")),
        ("onednn", "", "dnnl_gemm", same),
    ]


def gemm(args):
    """{(lib, threads, shape, form): best JSON line}, {lib: [info lines]}, best variant per key."""
    best, infos, missing = {}, {}, set()
    for rnd in range(args.rounds):
        for threads in args.threads:
            for lib, variant, exe, env_of in gemm_programs():
                path = os.path.join(BIN, exe)
                if not os.path.exists(path):
                    missing.add(exe)
                    continue
                log(f"gemm: round {rnd + 1}/{args.rounds}, {threads} thread(s), {lib}"
                    f"{' (' + variant + ')' if variant else ''}")
                r = run([path, "--threads", str(threads), "--reps", str(args.reps),
                         "--min-seconds", str(args.min_seconds)],
                        env=env_of(base_env(threads)), timeout=600)
                if r.rc != 0:
                    fail_note(exe, r)
                for d in r.lines():
                    d["variant"] = variant
                    RAW.append(d)
                    if d.get("kind") == "info":
                        infos.setdefault(lib, {})[(variant, threads)] = d
                    elif d.get("kind") == "gemm":
                        key = (lib, threads, d["shape"], d["form"])
                        if key not in best or d["gflops"] > best[key]["gflops"]:
                            best[key] = d
    for exe in sorted(missing):
        log(f"gemm: {exe} was not built (its library is missing): n/a")
    return best, infos


def flops_per_sample(layers, train=True):
    """2·I·O per layer forward; training adds dW (2·I·O) and dX (2·I·O) but the first layer's dX,
    which no one needs."""
    mac = [layers[i] * layers[i + 1] for i in range(len(layers) - 1)]
    if not train:
        return 2.0 * sum(mac)
    return 2.0 * (3 * sum(mac) - mac[0])


def ours_train(net, threads, epochs, model_path=None, seed=1):
    spec = NETS[net]
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "log.jsonl")
        cmd = [CLI, "train", "--data", DATA, *spec["flags"], "--lr", str(spec["lr"]), "--epochs",
               str(epochs), "--seed", str(seed), "--threads", str(threads), "--quiet", "--log",
               log_path, "--eval-test-each-epoch"]
        cmd += ["--save", model_path] if model_path else ["--no-save"]
        r = run(cmd, env=base_env(threads), timeout=900)
        if r.rc != 0:
            fail_note(f"backprop train ({net}, {threads} threads)", r)
            return None
        with open(log_path) as f:
            epochs_log = [json.loads(line) for line in f if line.strip()]
    for e in epochs_log:
        RAW.append(dict(e, kind="backprop_epoch", net=net, threads=threads, seed=seed))
    out = {"samples_per_second": max(e["samples_per_second"] for e in epochs_log),
           "test_accuracy": epochs_log[-1].get("test_accuracy"),
           "test_accuracy_per_epoch": [e.get("test_accuracy") for e in epochs_log],
           "maxrss_mib": r.maxrss_kib / 1024, "epochs": len(epochs_log)}
    RAW.append(dict(out, kind="backprop_train", net=net, threads=threads, seed=seed))
    return out


def torch_variants(threads):
    """(variant, env) pairs for PyTorch: OpenMP OpenBLAS, the environment as is and unset."""
    env = base_env(threads)
    omp_dir = None
    r = run(["dpkg", "-L", "libopenblas0-openmp"], timeout=30)
    for line in r.out.splitlines():
        if line.endswith("/libblas.so.3"):
            omp_dir = os.path.dirname(line)
    if omp_dir:
        env["LD_LIBRARY_PATH"] = omp_dir + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    else:
        log("torch: libopenblas0-openmp not found; PyTorch runs on the default libblas.so.3")
    return [("env as is", env), ("OPENBLAS_CORETYPE/L2_SIZE unset", unset_openblas(env))]


def torch_run(mode_args, threads, timeout, only=None):
    """The better of PyTorch's two variants (or the one named `only`): (result line, maxrss MiB,
    variant), or None."""
    best = None
    for variant, env in torch_variants(threads):
        if only is not None and variant != only:
            continue
        r = run([PYTHON, os.path.join(ROOT, "bench", "torch_bench.py"), *mode_args, "--threads",
                 str(threads)], env=env, timeout=timeout)
        if r.rc != 0:
            fail_note(f"torch_bench {' '.join(mode_args)} ({variant})", r)
            continue
        result = None
        for d in r.lines():
            d["variant"] = variant
            RAW.append(d)
            if d.get("kind") in ("torch_train", "torch_infer"):
                result = d
        if result is None:
            continue
        key = "samples_per_second_best" if "samples_per_second_best" in result else \
            "samples_per_second"
        cand = (result, r.maxrss_kib / 1024, variant)
        if best is None or result[key] > best[0][key]:
            best = cand
    return best


def acc_of(d):
    """A run's final test accuracy in %, or None."""
    return d["test_accuracy"] * 100 if d and d.get("test_accuracy") is not None else None


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def training(args):
    """{(net, threads): {"ours": ..., "torch": (line, MiB, variant)}} and the inference results."""
    res = {}
    os.makedirs(RESULTS, exist_ok=True)
    model_b = os.path.join(RESULTS, "model_b.safetensors")
    if os.path.exists(model_b):
        os.remove(model_b)  # never time a model left by an earlier run
    main_threads = TARGET_THREADS if TARGET_THREADS in args.threads else args.threads[-1]
    for threads in args.threads:
        for net in NETS:
            epochs = args.epochs[net] if threads == main_threads else args.epochs_other
            log(f"train: ({net}) {threads} thread(s), {epochs} epoch(s): backprop")
            ours = ours_train(net, threads, epochs, model_b if net == "b" else None)
            log(f"train: ({net}) {threads} thread(s), {epochs} epoch(s): PyTorch")
            theirs = torch_run(["train", "--net", net, "--epochs", str(epochs), "--lr",
                                str(NETS[net]["lr"]), "--data", DATA], threads, timeout=900)
            res[(net, threads)] = {"ours": ours, "torch": theirs, "epochs": epochs}
            if threads != main_threads:
                continue
            # Accuracy over more seeds: one run's final epoch moves by points with the seed.
            finals = [(1, acc_of(ours), acc_of(theirs[0] if theirs else None))]
            for seed in args.seeds[1:]:
                log(f"train: ({net}) {threads} thread(s), {epochs} epoch(s), seed {seed}: "
                    "backprop and PyTorch (accuracy)")
                o = ours_train(net, threads, epochs, seed=seed)
                t = torch_run(["train", "--net", net, "--epochs", str(epochs), "--lr",
                               str(NETS[net]["lr"]), "--seed", str(seed), "--data", DATA],
                              threads, timeout=900, only=theirs[2] if theirs else None)
                finals.append((seed, acc_of(o), acc_of(t[0] if t else None)))
            res[(net, threads)]["finals"] = finals
    infer = {}
    for threads in args.threads:
        log(f"infer: (d) {threads} thread(s)")
        ours = None
        exe = os.path.join(BIN, "infer_bench")
        if os.path.exists(model_b):
            r = run([exe, "--model", model_b,
                     "--images", os.path.join(DATA, "t10k-images-idx3-ubyte.gz"),
                     "--labels", os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"),
                     "--batch", "1000", "--threads", str(threads),
                     "--reps", str(max(args.reps, 5)), "--min-seconds", str(args.min_seconds)],
                    env=base_env(threads), timeout=300)
            if r.rc != 0:
                fail_note("infer_bench", r)
            for d in r.lines():
                RAW.append(d)
                if d.get("kind") == "infer":
                    ours = d
        theirs = torch_run(["infer", "--batch", "1000", "--reps", str(max(args.reps, 5)),
                            "--min-seconds", str(args.min_seconds), "--data", DATA], threads,
                           timeout=300)
        infer[threads] = {"ours": ours, "torch": theirs}
    return res, infer


# ------------------------------------------------------------------------------------------------
# The table

PEERS = ("openblas", "blis", "onednn")
PEER_NAMES = {"openblas": "OpenBLAS", "blis": "BLIS", "onednn": "oneDNN", "torch": "PyTorch"}
FORM_NAMES = {"forward": "Z = X·Wᵀ", "backward_data": "dX = dZ·W",
              "backward_weights": "dW += dZᵀ·X"}
MARKS = {"OPENBLAS_CORETYPE/L2_SIZE unset": "†", "BLIS_ARCH_TYPE=skx": "‡"}


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def fmt_ratio(ratio, threshold=None):
    """A ratio to 2 decimals, or 3 where 2 would round it onto the threshold it misses."""
    if ratio is None:
        return "n/a"
    if threshold is not None and ratio < threshold and round(ratio, 2) >= threshold:
        return f"{ratio:.3f}×"
    return f"{ratio:.2f}×"


def met(ok):
    return "–" if ok is None else ("met" if ok else "**not met**")


def needs(target, peer, flops, peak_gflops):
    """What a speed target asks of us as a fraction of the FMA peak, given the peer's figure."""
    if not peer or not peak_gflops:
        return ""
    return (f" (PyTorch runs at {peer * flops * 1e-9 / peak_gflops:.0%} of peak, so {target}× "
            f"needs {target * peer * flops * 1e-9 / peak_gflops:.0%})")


def build_table(peaks, gemm_best, train_res, infer_res, args):
    header = ["benchmark", "T", "unit", "backprop", "OpenBLAS", "BLIS", "oneDNN", "PyTorch",
              "best peer", "ours / best", "ours % peak", "target", "met"]
    rows = []
    targets_missed, targets_met = [], []

    def note(ok, what):
        if ok is not None:
            (targets_met if ok else targets_missed).append(what)

    for t in args.threads:
        p = peaks.get(t)
        rows.append([f"FMA peak ({p['isa'] if p else '?'})", str(t), "GFLOP/s",
                     fmt(p["gflops"] if p else None), "–", "–", "–", "–", "–", "–", "100", "–",
                     "–"])
    shapes = []
    for key in gemm_best:
        if (key[2], key[3]) not in shapes:
            shapes.append((key[2], key[3]))
    order = ["10x30x784", "64x128x784", "256x1024x784", "256x1024x1024", "1024x1024x1024"]
    forms = list(FORM_NAMES)
    shapes.sort(key=lambda s: (order.index(s[0]) if s[0] in order else 99, forms.index(s[1])))
    for t in args.threads:
        pk = peaks.get(t, {}).get("gflops")
        for shape, form in shapes:
            ours = gemm_best.get(("backprop", t, shape, form))
            ours_v = ours["gflops"] if ours else None
            cells, best_peer = [], None
            for lib in PEERS:
                d = gemm_best.get((lib, t, shape, form))
                if d is None:
                    cells.append("n/a")
                    continue
                cells.append(fmt(d["gflops"]) + MARKS.get(d.get("variant", ""), ""))
                if best_peer is None or d["gflops"] > best_peer[1]:
                    best_peer = (lib, d["gflops"])
            ratio = ours_v / best_peer[1] if ours_v and best_peer else None
            frac = ours_v / pk if ours_v and pk else None
            name = f"GEMM {shape.replace('x', '×')} {FORM_NAMES[form]}"
            target, ok = "–", None
            if t == TARGET_THREADS:
                target = f"≥ {GEMM_TARGET}× best"
                ok = ratio >= GEMM_TARGET if ratio is not None else None
                peer = PEER_NAMES[best_peer[0]] if best_peer else ""
                note(ok, f"{name}: {fmt_ratio(ratio, GEMM_TARGET)} {peer}")
                if shape == "1024x1024x1024" and form == "forward":
                    target += f", ≥ {PEAK_TARGET:.0%} peak"
                    ok2 = frac >= PEAK_TARGET if frac is not None else None
                    note(ok2, f"{name}: {fmt(frac * 100 if frac else None)}% of peak")
                    ok = None if ok is None or ok2 is None else (ok and ok2)
            rows.append([name, str(t), "GFLOP/s", fmt(ours_v), *cells, "–",
                         PEER_NAMES[best_peer[0]] if best_peer else "n/a",
                         fmt_ratio(ratio, GEMM_TARGET if t == TARGET_THREADS else None),
                         fmt(frac * 100 if frac else None), target, met(ok)])
    for t in args.threads:
        pk = peaks.get(t, {}).get("gflops")
        for net, spec in NETS.items():
            r = train_res.get((net, t))
            if r is None:
                continue
            ours, theirs = r["ours"], r["torch"]
            o = ours["samples_per_second"] if ours else None
            p = theirs[0]["samples_per_second_best"] if theirs else None
            mark = MARKS.get(theirs[2], "") if theirs else ""
            ratio = o / p if o and p else None
            flops = flops_per_sample(spec["layers"])
            frac = o * flops * 1e-9 / pk if o and pk else None
            name = f"train ({net}) {spec['desc']}"
            target, ok = "–", None
            if t == TARGET_THREADS:
                target = f"≥ {spec['target']}× PyTorch"
                ok = ratio >= spec["target"] if ratio is not None else None
                note(ok, f"train ({net}): {fmt_ratio(ratio, spec['target'])} PyTorch"
                         + needs(spec["target"], p, flops, pk))
            rows.append([name, str(t), f"samples/s, best of {r['epochs']} epochs", fmt(o, 0),
                         "–", "–", "–", fmt(p, 0) + mark, "PyTorch" if p else "n/a",
                         fmt_ratio(ratio), fmt(frac * 100 if frac else None), target, met(ok)])
        r = infer_res.get(t)
        if r is not None:
            o = r["ours"]["samples_per_second"] if r["ours"] else None
            p = r["torch"][0]["samples_per_second"] if r["torch"] else None
            mark = MARKS.get(r["torch"][2], "") if r["torch"] else ""
            ratio = o / p if o and p else None
            flops = flops_per_sample(NETS["b"]["layers"], train=False)
            frac = o * flops * 1e-9 / pk if o and pk else None
            target, ok = "–", None
            if t == TARGET_THREADS:
                target = f"≥ {INFER_TARGET}× PyTorch"
                ok = ratio >= INFER_TARGET if ratio is not None else None
                note(ok, f"inference (d): {fmt_ratio(ratio, INFER_TARGET)} PyTorch"
                         + needs(INFER_TARGET, p, flops, pk))
            rows.append(["infer (d) network (b), batch 1000", str(t), "samples/s", fmt(o, 0), "–",
                         "–", "–", fmt(p, 0) + mark, "PyTorch" if p else "n/a",
                         fmt_ratio(ratio), fmt(frac * 100 if frac else None), target, met(ok)])
    t = TARGET_THREADS if TARGET_THREADS in args.threads else args.threads[-1]
    for net, spec in NETS.items():
        r = train_res.get((net, t))
        if r is None:
            continue
        finals = r.get("finals", [])
        o = mean([f[1] for f in finals]) if all(f[1] is not None for f in finals) else None
        p = mean([f[2] for f in finals]) if all(f[2] is not None for f in finals) else None
        diff = o - p if o is not None and p is not None else None
        ok = diff >= -ACCURACY_POINTS if diff is not None else None
        seeds = ", ".join(str(f[0]) for f in finals)
        note(ok, f"accuracy ({net}): {fmt(o, 2)}% vs {fmt(p, 2)}%")
        rows.append([f"test accuracy ({net}) after {r['epochs']} epochs, mean of seeds {seeds}",
                     str(t), "%", fmt(o, 2), "–", "–", "–", fmt(p, 2),
                     "PyTorch" if p is not None else "n/a",
                     f"{diff:+.2f} pt".replace("-", "−") if diff is not None else "n/a", "–",
                     f"≥ −{ACCURACY_POINTS} pt", met(ok)])
    for net, spec in NETS.items():
        r = train_res.get((net, t))
        if r is None:
            continue
        ours, theirs = r["ours"], r["torch"]
        o = ours["maxrss_mib"] if ours else None
        p = theirs[1] if theirs else None
        ratio = o / p if o and p else None
        target, ok = "–", None
        if net == "c":
            target = "≤ 1/3 PyTorch"
            ok = ratio <= MEMORY_TARGET if ratio is not None else None
            note(ok, f"memory (c): {fmt_ratio(ratio)} PyTorch")
        rows.append([f"peak RSS, training ({net})", str(t), "MiB", fmt(o, 0), "–", "–", "–",
                     fmt(p, 0),
                     "PyTorch" if p else "n/a", fmt_ratio(ratio), "–",
                     target, met(ok)])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines, targets_met, targets_missed


def describe_infos(infos, torch_infos):
    out = []
    b = infos.get("backprop", {})
    if b:
        d = next(iter(b.values()))
        out.append(f"backprop: kernel table `{d['isa']}` (micro-tile {d['mr']}×{d['nr']}, "
                   f"KC {d['kc']}, MC {d['mc']}, NC {d['nc']})")
    ob = infos.get("openblas", {})
    if ob:
        cores = sorted({f"{v or 'default'}: {d['core']}" for (v, _), d in ob.items()})
        out.append("OpenBLAS " + next(iter(ob.values()))["config"].split(" ")[1] +
                   " (pthread build), kernels " + "; ".join(cores))
    bl = infos.get("blis", {})
    if bl:
        archs = sorted({f"{v}: {d['arch']}" for (v, _), d in bl.items()})
        out.append(f"BLIS {next(iter(bl.values()))['version']} (OpenMP build), sub-configuration "
                   + "; ".join(archs))
    dn = infos.get("onednn", {})
    if dn:
        d = next(iter(dn.values()))
        out.append(f"oneDNN {d['version']} (OpenMP), ISA up to {d['isa']}")
    if torch_infos:
        d = torch_infos[0]
        cores = sorted({f"{x['variant']}: {x.get('openblas_core', '?')}" for x in torch_infos})
        libs = sorted({os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p)
                       for x in torch_infos for p in x.get("blas_libraries", [])
                       if "libblas" in p})
        out.append(f"PyTorch {d['torch']} on {', '.join(libs) or 'its default BLAS'}, kernels "
                   + "; ".join(cores))
    return out


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="passes over all GEMM programs, alternating them (default 2)")
    ap.add_argument("--reps", type=int, default=3,
                    help="timed repetitions per measurement and round (default 3)")
    ap.add_argument("--min-seconds", type=float, default=0.2,
                    help="minimum seconds per repetition (default 0.2)")
    ap.add_argument("--epochs", default="a=10,b=10,c=5",
                    help=f"training epochs at {TARGET_THREADS} threads (default a=10,b=10,c=5)")
    ap.add_argument("--epochs-other", type=int, default=3,
                    help="training epochs at other thread counts (speed only; default 3)")
    ap.add_argument("--seeds", default="1,2,3,4,5",
                    help=f"seeds of the accuracy runs at {TARGET_THREADS} threads; the first is "
                    "also the speed run (default 1,2,3,4,5)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke test: 1 round, 1 repetition of 0.05 s, 1 epoch")
    ap.add_argument("--skip-gemm", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.seeds = [int(x) for x in args.seeds.split(",")]
    if args.seeds[0] != 1:
        ap.error("--seeds must start with 1, the seed of the speed runs")
    args.epochs = dict(kv.split("=") for kv in args.epochs.split(","))
    args.epochs = {k: int(args.epochs.get(k, 2)) for k in NETS}
    if args.quick:
        args.rounds, args.reps, args.min_seconds = 1, 1, 0.05
        args.epochs, args.epochs_other = {k: 1 for k in NETS}, 1
        args.seeds = [1]
    command = "make bench" if os.environ.get("BACKPROP_MAKE_BENCH") else \
        "/usr/bin/python3 bench/run.py " + " ".join(map(shlex.quote, sys.argv[1:]))

    t_start = time.monotonic()
    if not args.no_build:
        build(os.cpu_count() or 2)
    t_build = time.monotonic() - t_start
    (busy_b, steal_b), own_b = cpu_seconds(), own_cpu_seconds()

    (b0, _), o0 = cpu_seconds(), own_cpu_seconds()
    time.sleep(1.0)
    (b1, _), o1 = cpu_seconds(), own_cpu_seconds()
    if (b1 - b0) - (o1 - o0) > 0.1:
        log(f"warning: other processes are using {(b1 - b0) - (o1 - o0):.1f} cores; the figures "
            "will be noisy (2-thread runs most of all)")
    peaks = peak(args)
    gemm_best, infos = ({}, {}) if args.skip_gemm else gemm(args)
    train_res, infer_res = ({}, {}) if args.skip_train else training(args)

    t_total = time.monotonic() - t_start
    bench_seconds = t_total - t_build
    busy_e, steal_e = cpu_seconds()
    foreign = (busy_e - busy_b) - (own_cpu_seconds() - own_b)
    steal = steal_e - steal_b
    ncpu = os.cpu_count() or 1
    torch_infos = [d for d in RAW if d.get("kind") == "torch_info"]

    table, ok, missed = build_table(peaks, gemm_best, train_res, infer_res, args)
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    md = [f"## Benchmarks ({date})", "",
          f"Machine: {cpu_model()}, {ncpu} cores, {platform.system()} {platform.release()}, "
          f"Debian {debian_version()}. "
          f"Reproduce with `{command}` ({t_total / 60:.1f} min here, of which "
          f"{t_build / 60:.1f} min building).", ""]
    md += [f"- {line}" for line in describe_infos(infos, torch_infos)]
    load = (max(foreign, 0) + steal) / max(bench_seconds * ncpu, 1e-9)
    md += [f"- other load while measuring: {max(foreign, 0):.1f} CPU-seconds of other processes "
           f"and {steal:.1f} s stolen by the hypervisor, over {bench_seconds:.0f} s "
           f"({load:.1%} of the {ncpu} cores)"
           + (": **the figures are unreliable; rerun on a quiet machine**" if load > 0.05 else ""),
           ""]
    md += table
    md += ["",
           "T = threads. GEMM figures: 2·M·N·K flops per product (M = batch, N = layer outputs, "
           "K = layer inputs), the best of "
           f"{args.rounds} rounds × {args.reps} repetitions of ≥ {args.min_seconds} s each, every "
           "library in its own process; peers through their public APIs (cblas_sgemm, bli_sgemm, "
           "dnnl_sgemm) with the transposes as flags or strides, ours through src/kernels "
           "(gemm_nt, gemm). † OpenBLAS's (or PyTorch's) better figure came with "
           "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; ‡ BLIS's with BLIS_ARCH_TYPE forcing its "
           "AVX-512 (skx) configuration, as BLIS 0.9 does not recognise this CPU.",
           f"Training: Fashion-MNIST, 60,000 training images, seed 1 (more for accuracy); "
           f"samples/s is the best epoch "
           f"(epoch time excludes loading and shuffling); ours via `backprop train` (its log), "
           f"PyTorch via bench/torch_bench.py (same network, init scheme, loss, SGD η, batch; data "
           f"preloaded as float tensors, no DataLoader, `torch.set_num_threads(T)`, OpenMP "
           f"OpenBLAS). Test accuracy on the 10,000 test images after the same number of epochs, "
           f"the mean of the seeds' final figures "
           f"(met: ours no more than {ACCURACY_POINTS} points below PyTorch). % peak counts 2·I·O "
           f"flops per layer per sample forward and per gradient, no dX for the first layer. "
           f"Inference: forward pass with softmax on a preloaded 1000-image batch, best of "
           f"{max(args.reps, 5)} repetitions (ours: bench/infer_bench.cpp). Peak RSS: the whole "
           f"process (wait4), each run in its own process; PyTorch's includes the interpreter "
           f"and its libraries."]
    series = []
    for net in NETS:
        r = train_res.get((net, TARGET_THREADS if TARGET_THREADS in args.threads else
                           args.threads[-1]))
        if r and r.get("finals"):
            series.append(f"({net}) " + ", ".join(
                f"seed {sd}: {fmt(o, 2)} / {fmt(p, 2)}" for sd, o, p in r["finals"]))
    if series:
        md += ["Final test accuracy (%) per seed, ours / PyTorch (constant-η SGD moves it by a "
               "point or more from one epoch or seed to the next; every epoch's figure is in "
               "raw.jsonl): " + "; ".join(series) + "."]
    if not args.skip_gemm or not args.skip_train:
        md += ["", f"Targets (at {TARGET_THREADS} threads): {len(ok)} met, {len(missed)} not met."]
        if missed:
            md += ["Not met: " + "; ".join(missed) + "."]
    text = "\n".join(md) + "\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "bench.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, "raw.jsonl"), "w") as f:
        for d in RAW:
            f.write(json.dumps(d) + "\n")
    print(text, end="")
    log(f"wrote {os.path.relpath(os.path.join(RESULTS, 'bench.md'), ROOT)} and raw.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())

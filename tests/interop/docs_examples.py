#!/usr/bin/python3
"""Runs the examples of docs/interop.md, for tests/interop/docs_test.cpp. Prints one JSON object.

    docs_examples.py DOC DIR CLI ORT_NODE_MODULES NODE

Makes the inputs the page names (model.safetensors, images.npy, X.npy, y.npy, iris.csv) in DIR,
then runs every fenced block tagged python, sh or js, in the page's order, in DIR: each python
block in a fresh namespace (so each carries its own imports, as a copy-paste would need), each sh
block with bash -e and the CLI's folder first on PATH, each js block with node, require() finding
onnxruntime-node in ORT_NODE_MODULES. Prints {"blocks": [{"lang", "line", "ok", "output"}]}.
"""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import traceback

import numpy as np


def make_inputs(cli):
    r = np.random.default_rng(1)
    # 28x28 uint8 images, 10 classes (a bright band per class), and a 784-100-10 model on them.
    labels = np.arange(300) % 10
    images = r.integers(0, 60, size=(300, 28, 28))
    for c in range(10):
        images[labels == c, 2 * c:2 * c + 4, :] += 180
    np.save("images.npy", np.clip(images, 0, 255).astype(np.uint8))
    np.save("labels.npy", labels.astype(np.uint8))
    subprocess.run([cli, "train", "--train", "images.npy", "--labels", "labels.npy", "--hidden",
                    "100", "--epochs", "2", "--quiet", "--save", "model.safetensors"],
                   check=True, capture_output=True)
    # Three Gaussian classes in four features, as .npy and as a CSV with names.
    y = np.arange(150) % 3
    X = (r.normal(size=(3, 4)) * 2)[y] + r.normal(size=(150, 4)) + [5.8, 3.0, 3.7, 1.2]
    X = X.astype(np.float32)
    np.save("X.npy", X)
    np.save("y.npy", y.astype(np.int64))
    names = ["setosa", "versicolor", "virginica"]
    with open("iris.csv", "w") as f:
        f.write("sepal_length,sepal_width,petal_length,petal_width,species\n")
        for row, label in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + names[label] + "\n")


def blocks(doc):
    """(lang, first line number, code) of every fenced block tagged python, sh or js."""
    out, lang, start, code = [], None, 0, []
    with open(doc) as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^```(\w*)\s*$", line)
            if m and lang is None:
                lang, start, code = m.group(1) or "-", n, []
            elif line.startswith("```") and lang is not None:
                if lang in ("python", "sh", "js"):
                    out.append((lang, start, "".join(code)))
                lang = None
            elif lang is not None:
                code.append(line)
    return out


def run_python(code):
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "<block>", "exec"), {"__name__": "__block__"})
        return True, buf.getvalue()
    except Exception:  # the block's failure, reported rather than raised
        return False, buf.getvalue() + traceback.format_exc()


def run_process(args, env):
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    return p.returncode == 0, p.stdout + p.stderr


def main():
    doc, work, cli, ort_modules, node = (os.path.abspath(a) for a in sys.argv[1:6])
    os.chdir(work)
    make_inputs(cli)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(cli) + os.pathsep + env.get("PATH", "")
    env["NODE_PATH"] = ort_modules
    results = []
    for lang, line, code in blocks(doc):
        if lang == "python":
            ok, output = run_python(code)
        elif lang == "sh":
            ok, output = run_process(["bash", "-e", "-c", code], env)
        else:
            with open("run.js", "w") as f:
                f.write(code)
            ok, output = run_process([node, "run.js"], env)
        results.append({"lang": lang, "line": line, "ok": ok, "output": output[-3000:]})
    print(json.dumps({"blocks": results}))


if __name__ == "__main__":
    main()

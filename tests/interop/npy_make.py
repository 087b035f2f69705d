#!/usr/bin/python3
"""NumPy's side of tests/interop/npy_test.cpp. Each command prints one JSON object.

    npy_make.py make DIR          .npy files as NumPy writes them: every accepted dtype in both
                                  byte orders, format versions 1.0, 2.0 and 3.0, 0-d to 3-d shapes;
                                  and the ones the loader must refuse. Prints {"valid": [{"file",
                                  "dtype", "shape", "values"}], "invalid": {name: file}}, values
                                  flattened in C order (floats as Python floats: exact).
    npy_make.py load CASES.json   CASES: [{"file", "shape", "values"}] written by backprop: each
                                  through np.load, compared with the values, and np.save's bytes
                                  for the same float32 array compared with the file's.
"""

import io
import json
import sys

import numpy as np


def cmd_make(out):
    r = np.random.default_rng(7)
    valid = []

    def add(name, a, version=None):
        path = f"{out}/{name}.npy"
        if version is None:
            np.save(path, a)
        else:
            with open(path, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
        flat = a.reshape(-1)
        values = [bool(v) if a.dtype == np.bool_ else (int(v) if a.dtype.kind in "iu" else float(v))
                  for v in flat]
        valid.append({"file": path, "dtype": a.dtype.name, "shape": list(a.shape),
                      "values": values})

    for name in ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]:
        info = np.iinfo(name)
        a = r.integers(info.min, info.max, size=(3, 4), dtype=name, endpoint=True)
        a[0, 0], a[0, 1] = info.min, info.max
        add(f"{name}_le", a.astype(np.dtype(name).newbyteorder("<")))
        add(f"{name}_be", a.astype(np.dtype(name).newbyteorder(">")))
    for name in ["float32", "float64"]:
        a = r.normal(size=(3, 4)).astype(name)
        a[0, 0], a[0, 1] = np.finfo(name).max, -np.finfo(name).tiny
        add(f"{name}_le", a.astype(np.dtype(name).newbyteorder("<")))
        add(f"{name}_be", a.astype(np.dtype(name).newbyteorder(">")))
    add("bool", r.integers(0, 2, size=(2, 3)).astype(np.bool_))
    add("scalar", np.array(2.5, dtype=np.float32))
    add("vector", np.arange(5, dtype=np.int64))
    add("cube", r.normal(size=(2, 3, 4)).astype(np.float32))
    add("version2", np.arange(6, dtype=np.float32).reshape(2, 3), version=(2, 0))
    add("version3", np.arange(6, dtype=np.float64).reshape(3, 2), version=(3, 0))
    add("empty", np.zeros((0, 3), dtype=np.float32))

    invalid = {}

    def bad(name, a):
        path = f"{out}/{name}.npy"
        np.save(path, a, allow_pickle=True)
        invalid[name] = path

    bad("fortran", np.asfortranarray(r.normal(size=(4, 3))))
    bad("object", np.array([{"a": 1}, None], dtype=object))
    bad("complex", np.ones((2, 2), dtype=np.complex64))
    bad("float16", np.ones((2, 2), dtype=np.float16))
    bad("strings", np.array(["cat", "dog"]))
    bad("structured", np.zeros(3, dtype=[("x", "<f4"), ("y", "<i4")]))
    bad("datetime", np.array(["2024-01-01"], dtype="datetime64[D]"))
    np.savez(f"{out}/archive.npz", x=np.ones(3))
    invalid["npz"] = f"{out}/archive.npz"
    print(json.dumps({"valid": valid, "invalid": invalid}))


def cmd_load(path):
    with open(path) as f:
        cases = json.load(f)
    results = []
    for c in cases:
        a = np.load(c["file"], allow_pickle=False)
        expected = np.array(c["values"], dtype=np.float32).reshape(c["shape"])
        buf = io.BytesIO()
        np.save(buf, expected)
        with open(c["file"], "rb") as f:
            same_bytes = f.read() == buf.getvalue()
        results.append({
            "dtype": a.dtype.str,
            "shape": list(a.shape),
            "fortran": bool(np.isfortran(a)) and a.ndim > 1,
            "equal": bool(a.shape == expected.shape and np.array_equal(a, expected)),
            "same_bytes_as_np_save": same_bytes,
        })
    print(json.dumps({"cases": results}))


if __name__ == "__main__":
    {"make": cmd_make, "load": cmd_load}[sys.argv[1]](sys.argv[2])

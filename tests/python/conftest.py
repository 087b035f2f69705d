"""Shared pieces of the Python package's tests (run by ctest: tests/CMakeLists.txt sets
PYTHONPATH to the build tree's python/ folder and BACKPROP_CLI to the CLI built beside it)."""

import os
import subprocess

import numpy as np
import pytest

CLI = os.environ.get("BACKPROP_CLI", "")
SOURCE_DIR = os.environ.get(
    "BACKPROP_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture
def cli():
    """Runs the CLI with the given arguments; returns the CompletedProcess (stdout, stderr)."""
    if not CLI or not os.path.exists(CLI):
        pytest.fail("BACKPROP_CLI must name the backprop binary (ctest sets it)")

    def run(*args, check=True):
        proc = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"backprop {' '.join(map(str, args))} exited "
                                 f"{proc.returncode}: {proc.stderr}")
        return proc
    return run


def blobs(n=120, features=4, classes=3, seed=0):
    """Gaussian classes well apart: float32 X (n × features), int64 labels 0..classes−1."""
    r = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = r.normal(size=(classes, features)) * 3
    x = (centres[y] + r.normal(size=(n, features))).astype(np.float32)
    return x, y.astype(np.int64)


def regression(n=120, features=4, targets=1, seed=0):
    """A smooth function of the features plus a little noise: float32 X, float64 y."""
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, features)).astype(np.float32)
    w = r.normal(size=(features, targets))
    y = np.tanh(x @ w) + 0.05 * r.normal(size=(n, targets))
    return x, (y[:, 0] if targets == 1 else y)

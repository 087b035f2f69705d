#!/usr/bin/python3
"""Independent float64 reference for an MLP's forward pass, loss and gradients (RELIABILITY B.4.9).

Written from the math, not from the C++: plain NumPy, matrix form, no shared code.

    mlp_reference.py IN.json OUT.json

IN:  {"layers": [I, H1, ..., K], "hidden": "tanh", "output": "softmax", "loss": "cross-entropy",
      "leaky_slope": 0.01, "weights": [W1 (H1 x I), ...], "biases": [b1 (H1), ...],
      "x": B x I, "y": B x K}
OUT: {"output": B x K, "loss": L, "dW": [dL/dW1, ...], "db": [dL/db1, ...]}

Shapes (row-major): B = batch, I = inputs, K = outputs. Layer l: z = a_prev W^T + b, a = f(z).
L = (1/B) sum over examples of the per-example loss
    quadratic:               1/2 ||a - y||^2
    softmax + cross-entropy: sum_k y_k (logsumexp(z) - z_k)
    sigmoid + cross-entropy: sum_k max(z_k, 0) - z_k y_k + log1p(exp(-|z_k|))
"""

import json
import sys

import numpy as np


def sigmoid(z):
    # exp of a non-positive number only, so nothing overflows.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logsumexp(z):
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def activate(name, z, slope):
    if name == "sigmoid":
        return sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky-relu":
        return np.where(z > 0, z, slope * z)
    if name == "identity":
        return z.copy()
    if name == "softmax":
        return softmax(z)
    raise ValueError("unknown activation " + name)


def derivative(name, z, slope):
    """g'(z) elementwise, from z itself (not from the output)."""
    if name == "sigmoid":
        s = sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky-relu":
        return np.where(z > 0, 1.0, slope)
    if name == "identity":
        return np.ones_like(z)
    raise ValueError("no elementwise derivative for " + name)


def per_example_loss(output, loss, z, a, y):
    if loss == "quadratic":
        return 0.5 * ((a - y) ** 2).sum(axis=1)
    if loss == "cross-entropy" and output == "softmax":
        return (y * (logsumexp(z)[:, None] - z)).sum(axis=1)
    if loss == "cross-entropy" and output == "sigmoid":
        return (np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    raise ValueError("undefined pair " + output + " + " + loss)


def output_delta(output, loss, z, a, y):
    """d(per-example loss)/dz for each example (B x K), before the 1/B of the mean."""
    if loss == "quadratic":
        da = a - y  # d/da of 1/2 ||a - y||^2
        if output == "softmax":
            # Full Jacobian per example: da_j/dz_k = a_j (delta_jk - a_k), i.e. diag(a) - a a^T.
            dz = np.empty_like(z)
            for i in range(z.shape[0]):
                jac = np.diag(a[i]) - np.outer(a[i], a[i])
                dz[i] = jac.T @ da[i]
            return dz
        return da * derivative(output, z, 0.0)
    if loss == "cross-entropy" and output == "softmax":
        # d/dz_j of sum_k y_k (logsumexp(z) - z_k) = (sum_k y_k) softmax(z)_j - y_j
        return y.sum(axis=1, keepdims=True) * softmax(z) - y
    if loss == "cross-entropy" and output == "sigmoid":
        # d/dz of softplus(z) - z y = sigmoid(z) - y
        return sigmoid(z) - y
    raise ValueError("undefined pair " + output + " + " + loss)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        p = json.load(f)
    weights = [np.array(w, dtype=np.float64) for w in p["weights"]]
    biases = [np.array(b, dtype=np.float64) for b in p["biases"]]
    x = np.array(p["x"], dtype=np.float64)
    y = np.array(p["y"], dtype=np.float64)
    slope = float(p["leaky_slope"])
    n_layers = len(weights)
    assert len(p["layers"]) == n_layers + 1
    for l in range(n_layers):
        assert weights[l].shape == (p["layers"][l + 1], p["layers"][l])
        assert biases[l].shape == (p["layers"][l + 1],)
    names = [p["hidden"]] * (n_layers - 1) + [p["output"]]

    # Forward, keeping every z and a.
    acts, zs = [x], []
    for l in range(n_layers):
        z = acts[-1] @ weights[l].T + biases[l]
        zs.append(z)
        acts.append(activate(names[l], z, slope))

    batch = x.shape[0]
    loss = per_example_loss(p["output"], p["loss"], zs[-1], acts[-1], y).mean()

    # Backward: dz is dL/dz of the current layer, with the 1/B of the mean.
    dz = output_delta(p["output"], p["loss"], zs[-1], acts[-1], y) / batch
    dws, dbs = [None] * n_layers, [None] * n_layers
    for l in reversed(range(n_layers)):
        dws[l] = dz.T @ acts[l]  # z = a_prev W^T + b  =>  dL/dW = dz^T a_prev
        dbs[l] = dz.sum(axis=0)
        if l > 0:
            dz = (dz @ weights[l]) * derivative(names[l - 1], zs[l - 1], slope)

    out = {
        "output": acts[-1].tolist(),
        "loss": float(loss),
        "dW": [w.tolist() for w in dws],
        "db": [b.tolist() for b in dbs],
    }
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

"""The package and the CLI are one program: the same seed and data give the same model file, byte
for byte; each reads the other's model files; their predictions are the same bits."""

import numpy as np
import pytest

import backprop
from conftest import blobs, regression

# (CLI flags, the same as estimator parameters, data kind) for runs whose files must be equal.
RUNS = {
    "sgd-standardised": (["--hidden", "8", "--epochs", "3", "--batch-size", "10", "--lr", "0.3",
                          "--seed", "7", "--standardize"],
                         dict(hidden_layer_sizes=(8,), epochs=3, batch_size=10, lr=0.3,
                              random_state=7, standardize=True), "blobs"),
    "images-adam-dropout-val": (["--hidden", "16,8", "--activation", "relu", "--optimizer", "adam",
                                 "--dropout", "0.2", "--val-split", "0.2", "--patience", "2",
                                 "--schedule", "cosine", "--epochs", "4", "--batch-size", "32",
                                 "--seed", "2"],
                                dict(hidden_layer_sizes=(16, 8), activation="relu",
                                     optimizer="adam", dropout=0.2, validation_fraction=0.2,
                                     patience=2, schedule="cosine", epochs=4, batch_size=32,
                                     random_state=2), "images"),
    "derivation-quadratic": (["--layers", "4,5,3", "--loss", "quadratic", "--lr", "3",
                              "--batch-size", "10", "--epochs", "2", "--no-standardize"],
                             dict(hidden_layer_sizes=(5,), loss="quadratic", lr=3.0, batch_size=10,
                                  epochs=2, standardize=False), "blobs"),
    "regression-momentum": (["--task", "regress", "--hidden", "12", "--activation", "tanh",
                             "--optimizer", "momentum", "--lr", "0.05", "--epochs", "5",
                             "--seed", "11", "--standardize", "--weight-decay", "0.001"],
                            dict(hidden_layer_sizes=(12,), activation="tanh", optimizer="momentum",
                                 lr=0.05, epochs=5, random_state=11, standardize=True,
                                 weight_decay=0.001), "regression"),
    "regression-raw-targets": (["--task", "regress", "--hidden", "6", "--epochs", "3", "--lr", "0.01",
                                "--no-standardize-targets", "--no-standardize"],
                               dict(hidden_layer_sizes=(6,), epochs=3, lr=0.01,
                                    standardize_targets=False, standardize=False), "regression"),
}


def data(kind):
    if kind == "blobs":
        return blobs(n=150)
    if kind == "regression":
        return regression(n=150, targets=2)
    r = np.random.default_rng(4)  # 10 classes of 12×12 uint8 "images", a bright band per class
    y = np.arange(200) % 10
    x = r.integers(0, 60, size=(200, 12, 12))
    for c in range(10):
        x[y == c, c:c + 2, :] += 150
    return x.astype(np.uint8), y.astype(np.uint8)


@pytest.mark.parametrize("name", RUNS)
def test_same_seed_and_data_give_the_cli_model_file_byte_for_byte(name, cli, tmp_path):
    flags, params, kind = RUNS[name]
    x, y = data(kind)
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "y.npy", y)
    cli("train", "--train", tmp_path / "X.npy", "--labels", tmp_path / "y.npy", *flags, "--quiet",
        "--save", tmp_path / "cli.safetensors")
    cls = backprop.MLPRegressor if kind == "regression" else backprop.MLPClassifier
    est = cls(**params).fit(x, y)
    est.save(tmp_path / "py.safetensors")
    a = (tmp_path / "cli.safetensors").read_bytes()
    b = (tmp_path / "py.safetensors").read_bytes()
    # Every byte: weights, architecture, preprocessing, class and feature names, sample shape,
    # seed, init, data hash and training-row count (the format has no timestamps).
    assert a == b


def test_the_cli_reads_a_model_python_saved(cli, tmp_path):
    x, y = blobs(n=150)
    clf = backprop.MLPClassifier(hidden_layer_sizes=(8,), epochs=5, lr=0.3).fit(x, y)
    clf.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = cli("eval", "--model", tmp_path / "m.safetensors", "--test", tmp_path / "X.npy",
              "--test-labels", tmp_path / "y.npy", "--json").stdout
    import json
    assert json.loads(out)["accuracy"] == pytest.approx(clf.score(x, y), abs=1e-12)
    cli("predict", "--model", tmp_path / "m.safetensors", "--input", tmp_path / "X.npy",
        "--format", "npy", "--output", tmp_path / "p.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), clf.outputs(x))
    # Regression: outputs in the targets' units (standardised for training), the CLI's bits.
    xr, yr = regression(n=100, targets=2)
    yr = 50 + 10 * yr
    reg = backprop.MLPRegressor(hidden_layer_sizes=(8,), epochs=20).fit(xr, yr)
    reg.save(tmp_path / "r.safetensors")
    np.save(tmp_path / "Xr.npy", xr)
    cli("predict", "--model", tmp_path / "r.safetensors", "--input", tmp_path / "Xr.npy",
        "--format", "npy", "--output", tmp_path / "pr.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "pr.npy"), reg.outputs(xr))
    assert abs(reg.predict(xr).mean() - 50) < 5 and reg.score(xr, yr) > 0.5


def test_python_reads_a_model_the_cli_trained(cli, tmp_path):
    x, y = data("images")
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "y.npy", y)
    cli("train", "--train", tmp_path / "X.npy", "--labels", tmp_path / "y.npy", "--hidden", "20",
        "--epochs", "3", "--quiet", "--save", tmp_path / "m.safetensors")
    cli("predict", "--model", tmp_path / "m.safetensors", "--input", tmp_path / "X.npy",
        "--format", "npy", "--output", tmp_path / "p.npy")
    clf = backprop.load(tmp_path / "m.safetensors")
    assert isinstance(clf, backprop.MLPClassifier)
    assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 144
    assert clf.hidden_layer_sizes == (20,) and clf.activation == "sigmoid"
    np.testing.assert_array_equal(clf.outputs(x), np.load(tmp_path / "p.npy"))
    np.testing.assert_array_equal(clf.outputs(x.reshape(200, -1)), np.load(tmp_path / "p.npy"))
    # It trains on (partial_fit) and saves again, and the CLI reads the result.
    clf.partial_fit(x, y)
    clf.save(tmp_path / "again.safetensors")
    cli("info", "--model", tmp_path / "again.safetensors")


def test_file_errors_are_os_errors_with_the_cli_message(cli, tmp_path):
    with pytest.raises(OSError, match="nothing.safetensors") as e:
        backprop.load(tmp_path / "nothing.safetensors")
    cli_err = cli("info", "--model", tmp_path / "nothing.safetensors", check=False).stderr
    assert str(e.value) in cli_err  # the CLI prints "backprop info: error: " and the same line
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(OSError, match="bad.safetensors"):
        backprop.load(tmp_path / "bad.safetensors")
    clf = backprop.MLPClassifier(epochs=1).fit(*blobs(n=20))
    with pytest.raises(OSError, match="no-such-dir"):
        clf.save(tmp_path / "no-such-dir" / "m.safetensors")

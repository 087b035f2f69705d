"""Bad input gets an exception with a one-line message naming the array, the place, what was
expected and what was found (the CLI's messages, with a row and column for a file's byte), never a
crash; layouts and dtypes that are merely unusual are converted and work."""

import numpy as np
import pytest
import scipy.sparse

import backprop
from conftest import blobs

X, Y = blobs(n=40)


def nan_at(r, c, value=np.nan, dtype=np.float32):
    x = X.astype(dtype)
    x[r, c] = value
    return x


@pytest.mark.parametrize("x, y, error, message", [
    (nan_at(3, 1), Y, ValueError,
     r"^X: row 3, column 1: expected a finite value within float range, found NaN$"),
    (nan_at(0, 2, np.inf, np.float64), Y, ValueError, "row 0, column 2: .* found inf$"),
    (nan_at(5, 0, 1e300, np.float64), Y, ValueError, "row 5, column 0: .* found 1.0000000000000001e"),
    (X[:, 0], Y, ValueError, r"expected a 2-d array .* found shape \(40,\); Reshape your data"),
    (X[:0], Y[:0], ValueError, r"0 sample\(s\) \(shape=\(0, 4\)\)"),
    (X[:, :0], Y, ValueError, r"0 feature\(s\) \(shape=\(40, 0\)\)"),
    (X.astype(np.complex64), Y, ValueError, "Complex data not supported"),
    (np.array([["a"] * 4] * 40), Y, ValueError, "dtype <U1; convert with X.astype"),
    (scipy.sparse.csr_matrix(X), Y, ValueError, "sparse matrices are not supported"),
    (X, Y[:30], ValueError, r"y: holds 30 labels \(shape \(30,\)\), but X holds 40 examples"),
    (X, np.full(40, 3), ValueError, r"y holds 1 class \(3\): a classifier needs at least 2"),
    (X, Y + 0.5, ValueError, "Unknown label type: 'continuous'"),
    (X, np.eye(3)[Y], ValueError, "one-hot rows\\? pass y.argmax\\(1\\)"),
    (X, np.where(Y == 1, np.nan, Y), ValueError, "expected a class label, found nan"),
])
def test_fit_refuses_bad_arrays(x, y, error, message):
    with pytest.raises(error, match=message) as e:
        backprop.MLPClassifier(epochs=1).fit(x, y)
    assert "\n" not in str(e.value)


def test_objects_that_are_not_numbers_are_type_errors():
    x = X.astype(object)
    x[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="argument must be a string or a( real)? number"):
        backprop.MLPClassifier(epochs=1).fit(x, Y)


def test_prediction_refuses_bad_arrays_and_unfitted_models():
    clf = backprop.MLPClassifier(epochs=1)
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clf.predict(X)
    with pytest.raises(NotFittedError):
        clf.save("never-written.safetensors")
    clf.fit(X, Y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match=r"^X: row 2, column 3: .* found NaN$"):
        clf.predict(nan_at(2, 3))
    with pytest.raises(ValueError, match="Reshape your data"):
        clf.predict_proba(X[0])
    reg = backprop.MLPRegressor(epochs=1)
    with pytest.raises(ValueError, match=r"y: row 4, column 0: expected a finite target"):
        reg.fit(X, np.where(np.arange(40) == 4, np.inf, 1.0))
    with pytest.raises(ValueError, match=r"expected targets of shape \(40,\) or \(40, k\)"):
        reg.fit(X, np.ones((40, 2, 2)))


def test_the_binding_itself_checks_what_it_is_given():
    # The estimators convert before calling the module; called directly, it refuses rather than
    # reading memory wrongly.
    from backprop import _core
    clf = backprop.MLPClassifier(epochs=1).fit(X, Y)
    with pytest.raises(ValueError, match="expected a C-contiguous array"):
        clf._net.outputs(np.asfortranarray(X))
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        clf._net.outputs(X.astype(np.int64))
    with pytest.raises(ValueError, match=r"expected a 2-d array, found shape \(4,\)"):
        clf._net.outputs(X[0])
    settings = clf._settings(np.float32)
    settings["sample_shape"] = [4]
    y = Y.astype(np.int32).reshape(-1, 1)
    with pytest.raises(ValueError, match="class index 3 is not among the 3 classes"):
        _core.fit(X, y + 1, True, ["0", "1", "2"], ["a", "b", "c", "d"], settings)
    with pytest.raises(ValueError, match="4 columns, but 1 feature names"):
        _core.fit(X, y, True, ["0", "1", "2"], ["a"], settings)
    with pytest.raises(ValueError, match="missing setting hidden"):
        _core.fit(X, y, True, ["0", "1", "2"], list("abcd"), {})
    with pytest.raises(ValueError, match="Model bytes|model bytes"):
        _core.Net.from_bytes(b"not a model")


@pytest.mark.parametrize("convert", [
    lambda x: np.asfortranarray(x),               # Fortran order
    lambda x: np.repeat(x, 2, axis=1)[:, ::2],    # a strided view
    lambda x: x.astype(np.float64),               # float64
    lambda x: x.astype(">f4"),                    # big-endian
    lambda x: x.astype(np.float16).astype(np.float32),  # (value as float16 holds it, for below)
    lambda x: x.tolist(),                         # lists
])
def test_other_layouts_and_dtypes_are_converted_once_and_give_the_same_model(convert):
    x = X.astype(np.float16).astype(np.float32)  # values every dtype holds exactly
    base = backprop.MLPClassifier(hidden_layer_sizes=(5,), epochs=2).fit(x, Y)
    other = backprop.MLPClassifier(hidden_layer_sizes=(5,), epochs=2).fit(convert(x), Y)
    assert other._net.to_bytes() == base._net.to_bytes()
    np.testing.assert_array_equal(other.outputs(convert(x)), base.outputs(x))


def test_integer_features_are_converted_and_read_only_arrays_are_read_in_place():
    xi = np.round(X * 10).astype(np.int64)
    clf = backprop.MLPClassifier(hidden_layer_sizes=(5,), epochs=2).fit(xi, Y)
    ro = xi.astype(np.float32)
    ro.setflags(write=False)
    np.testing.assert_array_equal(clf.outputs(ro), clf.outputs(xi))

"""The estimators inside scikit-learn's machinery, their fitted attributes, partial_fit, pickling
and the parameters' checks."""

import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import backprop
from conftest import blobs, regression


def test_pipeline_grid_search_and_cross_validation():
    x, y = blobs(n=150)
    pipe = make_pipeline(StandardScaler(), backprop.MLPClassifier(hidden_layer_sizes=(8,),
                                                                  epochs=15, lr=0.3))
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9, scores
    grid = GridSearchCV(pipe, {"mlpclassifier__lr": [0.05, 0.3],
                               "mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=3)
    grid.fit(x, y)
    assert set(grid.best_params_) == {"mlpclassifier__lr", "mlpclassifier__hidden_layer_sizes"}
    assert grid.best_score_ > 0.9
    assert grid.predict(x).shape == (150,)
    r = cross_val_score(backprop.MLPRegressor(hidden_layer_sizes=(16,), epochs=30),
                        *regression(n=150), cv=3)
    assert r.min() > 0.5, r


def test_fitted_attributes_and_string_labels():
    x, y = blobs(n=90)
    names = np.array(["cat", "dog", "emu"], dtype=object)[y]
    clf = backprop.MLPClassifier(hidden_layer_sizes=(6,), epochs=4, validation_fraction=0.2,
                                 patience=2).fit(x, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.n_features_in_ == 4 and not hasattr(clf, "feature_names_in_")
    assert len(clf.loss_curve_) == clf.n_iter_ == len(clf.history_) <= 4
    h = clf.history_[0]
    for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                "learning_rate", "seconds", "samples_per_second", "grad_norm", "layers"):
        assert key in h, key
    assert clf.loss_curve_ == [e["train_loss"] for e in clf.history_]
    assert set(clf.predict(x)) <= {"cat", "dog", "emu"}
    p = clf.predict_proba(x)
    assert p.shape == (90, 3) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (clf.classes_[p.argmax(axis=1)] == clf.predict(x)).all()


def test_feature_names_from_a_dataframe_reach_the_model_file(tmp_path):
    pd = pytest.importorskip("pandas")
    x, y = blobs(n=60)
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    clf = backprop.MLPClassifier(hidden_layer_sizes=(4,), epochs=2).fit(df, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]
    clf.save(tmp_path / "m.safetensors")
    again = backprop.load(tmp_path / "m.safetensors")
    assert list(again.feature_names_in_) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(again.predict(df), clf.predict(df))
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(df.rename(columns={"a": "z"}))
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(x)


def test_regressor_with_several_targets():
    x, y = regression(n=120, targets=3)
    reg = backprop.MLPRegressor(hidden_layer_sizes=(16,), epochs=40).fit(x, y)
    assert reg.predict(x).shape == (120, 3) and reg.predict(x).dtype == np.float64
    assert reg.score(x, y) > 0.5
    one = backprop.MLPRegressor(epochs=2).fit(x, y[:, 0])
    assert one.predict(x).shape == (120,)


def test_partial_fit_keeps_model_and_optimizer_state():
    # Two partial_fit calls on the same rows are two epochs of fit, to the bit: the network, Adam's
    # moments and step count, and the shuffling stream all carry over from call to call.
    x, y = blobs(n=100)
    kw = dict(hidden_layer_sizes=(7,), optimizer="adam", batch_size=8, random_state=3)
    whole = backprop.MLPClassifier(epochs=2, **kw).fit(x, y)
    part = backprop.MLPClassifier(**kw)
    part.partial_fit(x, y, classes=[0, 1, 2])
    part.partial_fit(x, y)
    for (w1, b1), (w2, b2) in zip(whole._net.weights(), part._net.weights()):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    assert part.loss_curve_ == whole.loss_curve_
    # A third call goes on (the loss of the epoch is recorded) and unseen labels are refused.
    part.partial_fit(x[:50], y[:50])
    assert len(part.loss_curve_) == 3
    with pytest.raises(ValueError, match="class 7 was not seen in training"):
        part.partial_fit(x[:3], np.array([0, 7, 1]))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        part.partial_fit(x[:, :3], y)


def test_pickle_round_trips_through_the_model_file_bytes():
    x, y = blobs(n=60)
    clf = backprop.MLPClassifier(hidden_layer_sizes=(5,), epochs=3).fit(x, y)
    state = clf.__getstate__()
    assert state["_net"] == clf._net.to_bytes()  # the bytes save() writes
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.outputs(x), clf.outputs(x))
    assert again.get_params() == clf.get_params()
    reg = backprop.MLPRegressor(epochs=2).fit(*regression(n=40))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(x), reg.predict(x))


@pytest.mark.parametrize("param, value, message", [
    ("lr", -1.0, r"lr=-1.0: expected a number in \(0, 1e\+30\] \(the CLI's --lr\)"),
    ("activation", "softmax", "activation='softmax': expected one of sigmoid"),
    ("optimizer", "lbfgs", "optimizer='lbfgs': expected one of sgd"),
    ("hidden_layer_sizes", (10, 0), "hidden_layer_sizes=\\(10, 0\\): expected a tuple of widths"),
    ("batch_size", 0, "batch_size=0: expected an integer from 1"),
    ("dropout", 1.5, r"dropout=1.5: expected a rate in \[0, 1\)"),
    ("validation_fraction", 1.0, "validation_fraction=1.0: expected a number in \\[0, 0.99\\]"),
    ("random_state", -3, "random_state=-3: expected None, an integer"),
    ("schedule", "plateau", "plateau watches the validation loss: give --val-split"),
    ("patience", 2, "--patience watches the validation loss: give --val-split"),
    ("dropout", (0.1, 0.2), "2 rates for 1 hidden layers"),
    ("loss", "cross-entropy", None),  # with output identity below: refused by the library
])
def test_bad_parameters_are_value_errors_with_the_cli_message(param, value, message):
    x, y = blobs(n=30)
    clf = backprop.MLPClassifier(epochs=1, **{param: value})
    if message is None:
        clf.set_params(output="identity")
        message = "needs probabilities"
    with pytest.raises(ValueError, match=message):
        clf.fit(x, y)

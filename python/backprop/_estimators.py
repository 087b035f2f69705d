"""MLPClassifier and MLPRegressor: scikit-learn estimators whose fit is `backprop train`.

Parameters are the CLI's flags (docs/python.md has the table). Arrays go to the library as they
are when they are C-contiguous float32, float64 or uint8 (uint8 features are scaled by 1/255, as
the CLI scales images); any other dtype or layout is converted once. Bad input raises ValueError
(TypeError for objects that are not numbers), a file OSError, each with a one-line message that
names the array, row and column, what was expected and what was found, as the CLI names a file's
byte.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.utils.multiclass import type_of_target

from . import _core

_HIDDEN = ("sigmoid", "tanh", "relu", "leaky-relu", "identity")
_OUTPUTS = ("softmax", "sigmoid", "identity")
_LOSSES = ("cross-entropy", "quadratic")
_INITS = ("auto", "xavier", "he", "lecun")
_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "irprop")
_SCHEDULES = ("constant", "step", "exponential", "cosine", "plateau")
_NONFINITE = ("stop", "skip-batch")
_MAX_WIDTH = 1 << 24


def _is_sparse(x):
    try:
        import scipy.sparse
    except ImportError:  # pragma: no cover - scikit-learn depends on SciPy
        return False
    return scipy.sparse.issparse(x)


def _shape_text(shape):
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _feature_names(x):
    """A DataFrame's column names when they are all strings (else None), as scikit-learn takes
    feature_names_in_."""
    columns = getattr(x, "columns", None)
    if columns is None or not hasattr(x, "iloc"):
        return None
    names = list(columns)
    if names and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None


def _as_features(x, name="X"):
    """x as a C-contiguous 2-d float32, float64 or uint8 array, and its sample shape.

    Arrays already so are returned as they are (no copy); other real dtypes become float32 in one
    conversion. Examples of more than one dimension (images, n × 28 × 28) are flattened, as the
    CLI flattens them, and keep their shape as the sample shape."""
    if _is_sparse(x):
        raise ValueError(f"{name}: sparse matrices are not supported: expected a dense array "
                         f"(convert with {name}.toarray())")
    if hasattr(x, "iloc"):  # pandas: its values, without copying when it can
        x = x.to_numpy()
    a = np.asarray(x)
    if a.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported: expected real features, found "
                         f"dtype {a.dtype}")
    if a.dtype.kind == "O":
        # Numbers held as Python objects; float() raises TypeError for anything else.
        a = np.asarray(a, dtype=np.float64)
    elif a.dtype.kind in "USVMm":
        raise ValueError(f"{name}: expected features of a real number dtype, found dtype "
                         f"{a.dtype}; convert with {name}.astype(np.float32)")
    if a.ndim < 2:
        raise ValueError(
            f"{name}: expected a 2-d array (examples, features), found shape {_shape_text(a.shape)}"
            f"; Reshape your data with {name}.reshape(-1, 1) if it holds one feature or "
            f"{name}.reshape(1, -1) if it holds one example")
    n, sample_shape = a.shape[0], tuple(int(d) for d in a.shape[1:])
    width = int(np.prod(sample_shape))
    if n == 0:
        raise ValueError(f"{name}: 0 sample(s) (shape={_shape_text(a.shape)}) while a minimum of 1 "
                         f"is required: expected at least one example of at least one feature")
    if width == 0:
        raise ValueError(f"{name}: 0 feature(s) (shape={_shape_text(a.shape)}) while a minimum of 1 "
                         f"is required: expected at least one example of at least one feature")
    native = a.dtype.isnative or a.dtype.itemsize == 1
    if not (native and a.dtype in (np.float32, np.float64, np.uint8)):
        a = a.astype(np.float32)
    a = a.reshape(n, width) if a.ndim > 2 else a
    return np.ascontiguousarray(a), sample_shape


def _check_random_state(random_state):
    """The seed of the CLI's --seed: an int >= 0 as it is, None the CLI's default (1), and a
    NumPy RandomState or Generator draws one."""
    if random_state is None:
        return 1
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if 0 <= int(random_state) < 2**64:
            return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(f"random_state={random_state!r}: expected None, an integer in [0, 2^64) or a "
                     "NumPy RandomState (the CLI's --seed)")


class _BaseMLP(BaseEstimator):
    """The parameters, fit and prediction shared by MLPClassifier and MLPRegressor."""

    def __init__(self, hidden_layer_sizes=(100,), activation="sigmoid", output=None, loss=None,
                 leaky_slope=0.01, init="auto", optimizer="sgd", lr=None, momentum=0.9,
                 beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=None, dropout=0.0,
                 clip_norm=0.0, label_smoothing=0.0, schedule="constant", warmup=0, lr_step=10,
                 lr_gamma=None, lr_min=0.0, plateau_patience=5, plateau_factor=0.1, patience=0,
                 validation_fraction=0.0, on_nonfinite="stop", batch_size=16, epochs=20,
                 standardize=None, standardize_targets=True, random_state=None, threads=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.output = output
        self.loss = loss
        self.leaky_slope = leaky_slope
        self.init = init
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.clip_norm = clip_norm
        self.label_smoothing = label_smoothing
        self.schedule = schedule
        self.warmup = warmup
        self.lr_step = lr_step
        self.lr_gamma = lr_gamma
        self.lr_min = lr_min
        self.plateau_patience = plateau_patience
        self.plateau_factor = plateau_factor
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.on_nonfinite = on_nonfinite
        self.batch_size = batch_size
        self.epochs = epochs
        self.standardize = standardize
        self.standardize_targets = standardize_targets
        self.random_state = random_state
        self.threads = threads

    # -- parameters ------------------------------------------------------------------------------

    def _settings(self, x_dtype):
        """The parameters as the library's settings, each checked as the CLI checks its flag."""
        def bad(param, expected):
            value = getattr(self, param)
            flag = "--" + {"hidden_layer_sizes": "hidden", "validation_fraction": "val-split",
                           "random_state": "seed"}.get(param, param).replace("_", "-")
            raise ValueError(f"{param}={value!r}: expected {expected} (the CLI's {flag})")

        def number(param, lo, hi, lo_open=False, hi_open=False, optional=False):
            v = getattr(self, param)
            if v is None and optional:
                return None
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
            ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                bad(param, f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                           f"{')' if hi_open else ']'}")
            return float(v)

        def integer(param, lo, hi):
            v = getattr(self, param)
            if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and lo <= v <= hi):
                bad(param, f"an integer from {lo} to {hi}")
            return int(v)

        def choice(param, allowed, optional=False):
            v = getattr(self, param)
            if v is None and optional:
                return ""
            if v not in allowed:
                bad(param, "one of " + ", ".join(allowed))
            return v

        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = list(hidden)
        except TypeError:
            hidden = [None]
        if not all(isinstance(h, numbers.Integral) and not isinstance(h, bool)
                   and 1 <= h <= _MAX_WIDTH for h in hidden):
            bad("hidden_layer_sizes", f"a tuple of widths from 1 to {_MAX_WIDTH}")
        hidden = [int(h) for h in hidden]
        dropout = self.dropout
        rates = list(dropout) if isinstance(dropout, (tuple, list, np.ndarray)) else [dropout]
        for r in rates:
            if not (isinstance(r, numbers.Real) and not isinstance(r, bool) and 0 <= r < 1):
                bad("dropout", "a rate in [0, 1), or one per hidden layer")
        rates = [float(r) for r in rates]
        if all(r == 0 for r in rates):
            rates = []  # as the CLI without --dropout
        standardize = self.standardize
        if standardize is None:  # the CLI standardises CSV columns and scales images
            standardize = x_dtype != np.uint8
        elif not isinstance(standardize, (bool, np.bool_)):
            bad("standardize", "True, False or None (standardise unless X is uint8)")
        if not isinstance(self.standardize_targets, (bool, np.bool_)):
            bad("standardize_targets", "True or False")
        return {
            "hidden": hidden,
            "activation": choice("activation", _HIDDEN),
            "output": choice("output", _OUTPUTS, optional=True),
            "loss": choice("loss", _LOSSES, optional=True),
            "leaky_slope": number("leaky_slope", 1e-6, 0.999999),
            "init": choice("init", _INITS),
            "optimizer": choice("optimizer", _OPTIMIZERS),
            "lr": number("lr", 0, 1e30, lo_open=True, optional=True),
            "momentum": number("momentum", 0, 0.999999),
            "beta1": number("beta1", 0, 0.999999),
            "beta2": number("beta2", 0, 0.999999999),
            "eps": number("eps", 0, 1e30, lo_open=True),
            "weight_decay": number("weight_decay", 0, 1e6, optional=True),
            "dropout": rates,
            "clip_norm": number("clip_norm", 0, 1e30),
            "label_smoothing": number("label_smoothing", 0, 0.999),
            "schedule": choice("schedule", _SCHEDULES),
            "warmup": integer("warmup", 0, 1000000),
            "lr_step": integer("lr_step", 1, 1000000),
            "lr_gamma": number("lr_gamma", 1e-9, 1.0, optional=True),
            "lr_min": number("lr_min", 0, 1e6),
            "plateau_patience": integer("plateau_patience", 1, 1000000),
            "plateau_factor": number("plateau_factor", 1e-9, 0.999999),
            "patience": integer("patience", 0, 1000000),
            "val_split": number("validation_fraction", 0, 0.99),
            "on_nonfinite": choice("on_nonfinite", _NONFINITE),
            "batch_size": integer("batch_size", 1, 1 << 24),
            "epochs": integer("epochs", 1, 1000000),
            "seed": _check_random_state(self.random_state),
            "threads": integer("threads", 0, 1024),
            "standardize": bool(standardize),
            "standardize_targets": bool(self.standardize_targets),
        }

    # -- data ------------------------------------------------------------------------------------

    def _check_X(self, X, reset):
        names = _feature_names(X)
        x, sample_shape = _as_features(X)
        if reset:
            self.n_features_in_ = x.shape[1]
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return x, sample_shape
        self._check_fitted()
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {x.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None and names is not None and list(fitted) != list(names):
            raise ValueError("X: The feature names should match those that were passed during "
                             f"fit: expected {list(fitted)}, found {list(names)}")
        if fitted is not None and names is None:
            warnings.warn(f"X does not have valid feature names, but {type(self).__name__} was "
                          "fitted with feature names", UserWarning)
        return x, sample_shape

    def _check_fitted(self):
        if getattr(self, "_net", None) is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: call "
                                 "fit first (or backprop.load a model file)")

    def _feature_name_list(self, width):
        names = getattr(self, "feature_names_in_", None)
        return [str(n) for n in names] if names is not None else [f"x{j}" for j in range(width)]

    def _fitted(self, net, history):
        self._net = net
        self.history_ = list(history)
        self.loss_curve_ = [h["train_loss"] for h in self.history_]
        self.n_iter_ = len(self.history_)
        best = [h["epoch"] for h in self.history_ if h.get("best")]
        self.best_epoch_ = best[-1] if best else None
        return self

    def _fit(self, X, y, partial, classes=None):
        x, sample_shape = self._check_X(X, reset=not partial or getattr(self, "_net", None) is None)
        targets, class_names = self._check_y(y, x.shape[0], partial, classes)
        settings = self._settings(x.dtype)
        settings["sample_shape"] = list(sample_shape)
        names = self._feature_name_list(x.shape[1])
        classify = class_names is not None
        if partial:
            if (settings["schedule"] != "constant" or settings["warmup"] or settings["patience"]
                    or settings["val_split"]):
                raise ValueError("partial_fit trains one epoch on the rows it is given: schedule "
                                 "must be 'constant', and warmup, patience and validation_fraction "
                                 "0 (use fit for those)")
            net, history = _core.partial_fit(getattr(self, "_net", None), x, targets, classify,
                                             class_names or [], names, settings)
            return self._fitted(net, history)
        net, history = _core.fit(x, targets, classify, class_names or [], names, settings)
        return self._fitted(net, history)

    def _outputs(self, X):
        x, _ = self._check_X(X, reset=False)
        threads = self.threads if isinstance(self.threads, numbers.Integral) else 0
        return self._net.outputs(x, int(threads))

    # -- files and pickling ----------------------------------------------------------------------

    def save(self, path):
        """Writes the model file `backprop eval` and `backprop predict` read (safetensors,
        atomically). Raises OSError naming the file when it cannot."""
        self._check_fitted()
        self._net.save(str(path))
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        net = state.get("_net")
        if net is not None:  # the model file's bytes (partial_fit's optimizer state is not kept)
            state["_net"] = net.to_bytes()
        return state

    def __setstate__(self, state):
        net = state.get("_net")
        if isinstance(net, bytes):
            state = dict(state, _net=_core.Net.from_bytes(net, "pickled model"))
        self.__dict__.update(state)


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multilayer perceptron classifier trained by backprop (the CLI's `train`, in process).

    Defaults are the CLI's: one hidden layer of 100 sigmoid units, softmax output, cross-entropy,
    SGD with lr 0.1, batch 16, 20 epochs, seed 1 (random_state=None). Features are standardised
    from the training rows unless X is uint8 (then scaled by 1/255) or standardize=False.

    Fitted attributes: classes_, n_features_in_, feature_names_in_ (DataFrame columns),
    loss_curve_ (training loss per epoch), history_ (per epoch, the keys of the CLI's --log),
    n_iter_ (epochs run), best_epoch_ (early stopping's kept epoch, or None).
    """

    def _check_y(self, y, n, partial, classes):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is "
                             "None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected: y is taken "
                          "as y.ravel()", DataConversionWarning, stacklevel=3)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y: classification takes one class label per example: expected "
                             f"shape ({n},) or ({n}, 1), found {_shape_text(y.shape)} (one-hot rows? "
                             f"pass y.argmax(1); several targets? use MLPRegressor)")
        if y.shape[0] != n:
            raise ValueError(f"y: holds {y.shape[0]} labels (shape {_shape_text(y.shape)}), but X "
                             f"holds {n} examples")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(f"y: row {i}: expected a class label, found {y[i]!r}: Input y "
                             f"contains NaN or infinity")
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"y: Unknown label type: {kind!r}: expected class labels (integers, "
                             f"strings or whole numbers); regression targets need MLPRegressor")
        if partial and getattr(self, "_net", None) is not None:
            known = self.classes_
        else:
            known = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if partial and classes is not None:
                unseen = np.setdiff1d(np.unique(y), known)
                if unseen.size:
                    raise ValueError(f"y: class {unseen[0]!r} is not in classes={list(known)!r}")
            if known.size < 2:
                raise ValueError(f"y holds 1 class ({known[0]!r}): a classifier needs at least 2 "
                                 "classes")
            self.classes_ = known
        index = np.searchsorted(known, y)
        index[index >= known.size] = 0
        wrong = known[index] != y
        if np.any(wrong):
            i = int(np.flatnonzero(wrong)[0])
            raise ValueError(f"y: row {i}: class {y[i]!r} was not seen in training (classes "
                             f"{list(known)!r})")
        return (np.ascontiguousarray(index, dtype=np.int32).reshape(-1, 1),
                [str(c) for c in known])

    def fit(self, X, y):
        """Trains a new network on X (examples × features) and class labels y; returns self."""
        return self._fit(X, y, partial=False)

    def partial_fit(self, X, y, classes=None):
        """One more epoch over (X, y), continuing the network, the optimizer's state and the
        shuffling stream of the previous call (a new network on the first call, whose `classes`,
        or else y's labels, fix classes_). The first call's rows decide the standardisation."""
        return self._fit(X, y, partial=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, n × len(classes_), float64: the network's outputs (softmax, or
        sigmoid outputs) normalised so each row sums to 1."""
        p = self._outputs(X).astype(np.float64)
        total = p.sum(axis=1, keepdims=True)
        uniform = total[:, 0] <= 0
        p[uniform] = 1.0
        total[uniform] = p.shape[1]
        return p / total

    def predict(self, X):
        """The class of the largest output for each row."""
        index = np.argmax(self._outputs(X), axis=1)
        return self.classes_[index]

    def outputs(self, X):
        """The network's outputs as float32, bit for bit what `backprop predict --format npy`
        writes for the same rows."""
        return self._outputs(X)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multilayer perceptron regressor trained by backprop (the CLI's `train --task regress`).

    Defaults as MLPClassifier's, with an identity output and the quadratic loss; the targets are
    standardised from the training rows for training (standardize_targets=True, the CLI's
    default) and predictions come back in their units. y may hold several targets (n × k).
    Fitted attributes as MLPClassifier's, without classes_.
    """

    def _check_y(self, y, n, partial, classes):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is "
                             "None")
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"y: expected numeric targets, found dtype {y.dtype}") from None
        if y.ndim not in (1, 2) or y.shape[0] != n or (y.ndim == 2 and y.shape[1] == 0):
            raise ValueError(f"y: expected targets of shape ({n},) or ({n}, k), found "
                             f"{_shape_text(y.shape)}")
        y2 = y.reshape(n, -1)
        finite = np.isfinite(y2) & (np.abs(y2) <= np.finfo(np.float32).max)
        if not np.all(finite):
            i, j = (int(v[0]) for v in np.nonzero(~finite))
            raise ValueError(f"y: row {i}, column {j}: expected a finite target within float "
                             f"range, found {y2[i, j]!r}: Input y contains NaN or infinity")
        if partial and getattr(self, "_net", None) is not None and y2.shape[1] != self._n_targets:
            raise ValueError(f"y has {y2.shape[1]} targets, but the model has {self._n_targets} "
                             "outputs")
        self._y_ndim = y.ndim
        self._n_targets = y2.shape[1]
        return np.ascontiguousarray(y2, dtype=np.float32), None

    def fit(self, X, y):
        """Trains a new network on X (examples × features) and targets y (n or n × k)."""
        return self._fit(X, y, partial=False)

    def partial_fit(self, X, y):
        """One more epoch over (X, y), continuing the previous call's network and optimizer."""
        return self._fit(X, y, partial=True)

    def predict(self, X):
        """The outputs, float64: shape (n,) when fitted on one-dimensional y, else (n, k)."""
        out = self._outputs(X).astype(np.float64)
        return out.ravel() if self._y_ndim == 1 else out

    def outputs(self, X):
        """The network's outputs as float32, bit for bit what `backprop predict --format npy`
        writes for the same rows."""
        return self._outputs(X)

    def _more_tags(self):
        return {"multioutput": True}


def _class_labels(names):
    """Class names of a model file as classes_: integers when every name is one ("0", "7")."""
    try:
        ints = [int(s) for s in names]
        if all(str(i) == s for i, s in zip(ints, names)):
            return np.asarray(ints)
    except ValueError:
        pass
    return np.asarray(names, dtype=object)


def load(path):
    """The estimator of a model file written by save() or by `backprop train` (MLPClassifier or
    MLPRegressor by the file's task), ready to predict, score, save and partial_fit. Raises
    OSError naming the file and the place when it cannot be read or is not a valid model."""
    net = _core.Net.load(str(path))
    layers = net.layers
    est = (MLPClassifier if net.classify else MLPRegressor)(
        hidden_layer_sizes=tuple(layers[1:-1]), activation=net.activation, output=net.output,
        loss=net.loss, leaky_slope=net.leaky_slope, random_state=net.seed)
    est.n_features_in_ = layers[0]
    names = list(net.feature_names)
    if names and names != [f"x{j}" for j in range(len(names))]:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if net.classify:
        est.classes_ = _class_labels(list(net.class_names))
    else:
        est._y_ndim = 1 if layers[-1] == 1 else 2
        est._n_targets = layers[-1]
    return est._fitted(net, [])

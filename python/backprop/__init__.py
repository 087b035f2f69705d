"""backprop in Python: scikit-learn estimators over the C++ library, in process.

    import backprop
    clf = backprop.MLPClassifier(hidden_layer_sizes=(100,), epochs=20).fit(X, y)
    clf.predict(X_test)
    clf.save("model.safetensors")          # the CLI's model file: backprop eval/predict read it
    clf = backprop.load("model.safetensors")

Parameters mirror `backprop train`'s flags; the same seed and data give the same model bits as
the CLI. See docs/python.md.
"""

from ._estimators import MLPClassifier, MLPRegressor, load
from ._core import version as _version

__version__ = _version()
__all__ = ["MLPClassifier", "MLPRegressor", "load", "__version__"]

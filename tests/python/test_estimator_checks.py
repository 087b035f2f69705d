"""scikit-learn's own estimator checks, every one of them, on both estimators with their
defaults (the CLI's: 100 sigmoid units, SGD lr 0.1, batch 16, 20 epochs, seed 1).

No check is skipped or expected to fail: parametrize_with_checks marks as xfail only the checks an
estimator lists in its _xfail_checks tag, and test_no_check_is_excused_by_tags proves that our
estimators list none (and do not set _skip_test or non_deterministic, which would drop checks)."""

import pytest
from sklearn.utils import estimator_checks
from sklearn.utils._tags import _safe_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

import backprop

ESTIMATORS = [backprop.MLPClassifier(), backprop.MLPRegressor()]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_check(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_no_check_is_excused_by_tags(estimator):
    tags = _safe_tags(estimator)
    assert not tags.get("_xfail_checks"), tags.get("_xfail_checks")
    assert not tags["_skip_test"]
    assert not tags["non_deterministic"]
    assert not tags["no_validation"]
    assert "2darray" in tags["X_types"]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_check_estimator_runs_every_check(estimator):
    # The generator check_estimator walks: more than 35 distinct checks for each estimator, among them the
    # ones about bad input, pickling and invariances.
    names = {getattr(c, "func", c).__name__
             for _, c in estimator_checks.check_estimator(estimator, generate_only=True)}
    assert len(names) > 35
    for must in ("check_estimators_nan_inf", "check_estimators_pickle", "check_fit2d_predict1d",
                 "check_methods_subset_invariance", "check_fit_idempotent",
                 "check_estimators_empty_data_messages", "check_estimator_sparse_data",
                 "check_supervised_y_2d", "check_estimators_partial_fit_n_features"):
        assert must in names

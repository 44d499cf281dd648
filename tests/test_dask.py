"""Dask as the distributed engine: searches and sharded evaluation on a LocalCluster.

joblib's Dask backend runs scikit-learn's searches and the report's shards on
the cluster's worker processes; the results must equal a serial run.
"""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate

from sklearn_robust import AdversarialClassifier
from sklearn_robust.attacks import APGD, PGD
from sklearn_robust.metrics import make_robust_scorer, robustness_report

distributed = pytest.importorskip("dask.distributed")

TINY = dict(n_steps=2, step_size=0.05, max_epochs=2, random_state=0,
            module__hidden_layer_sizes=(16,))


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                       processes=True, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def data(digits_split):
    X, _, y, _ = digits_split
    return X[:240], y[:240]


def _search():
    return GridSearchCV(AdversarialClassifier(**TINY), {"eps": [0.0, 0.1]}, cv=2,
                        scoring=make_robust_scorer(eps=0.1, attack="pgd"))


def test_grid_search_on_dask_equals_serial(client, data):
    X, y = data
    serial = _search().fit(X, y)
    with joblib.parallel_config("dask"):
        on_dask = _search().fit(X, y)
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(on_dask.cv_results_[key],
                                      serial.cv_results_[key])
    assert on_dask.best_params_ == serial.best_params_
    # the refitted model is the same network
    np.testing.assert_array_equal(on_dask.predict_proba(X), serial.predict_proba(X))


def test_cross_validate_on_dask_equals_serial(client, data):
    X, y = data
    scoring = {"robust": make_robust_scorer(eps=0.1, attack="pgd"),
               "clean": "accuracy"}
    est = AdversarialClassifier(eps=0.1, **TINY)
    serial = cross_validate(est, X, y, cv=2, scoring=scoring)
    with joblib.parallel_config("dask"):
        on_dask = cross_validate(est, X, y, cv=2, scoring=scoring)
    for key in ("test_robust", "test_clean"):
        np.testing.assert_array_equal(on_dask[key], serial[key])


def test_sharded_report_on_dask(client, data):
    X, y = data
    clf = AdversarialClassifier(eps=0.0, **TINY).fit(X, y)
    attack = PGD(n_steps=5, random_start=False)  # deterministic per point
    serial = robustness_report(clf, X, y, eps=0.1, attack=attack)
    with joblib.parallel_config("dask"):
        sharded = robustness_report(clf, X, y, eps=0.1, attack=attack, n_jobs=2)
    np.testing.assert_array_equal(sharded.robust, serial.robust)
    np.testing.assert_array_equal(sharded.clean_correct, serial.clean_correct)
    np.testing.assert_allclose(sharded.X_adv, serial.X_adv, atol=1e-6)
    np.testing.assert_array_equal(sharded.fooled_by, serial.fooled_by)
    for a, b in zip(sharded.attacks, serial.attacks):
        for key in ("attack", "robust_accuracy", "n_attacked", "n_fooled",
                    "n_forward", "n_backward"):
            assert a[key] == b[key]
    # random starts differ by shard, but the cascade's contract holds
    with joblib.parallel_config("dask"):
        rand = robustness_report(clf, X, y, eps=0.1, attack=APGD(n_iter=10),
                                 n_jobs=-1)
    assert np.all(rand.robust <= rand.clean_correct)
    assert rand.attacks[0]["n_attacked"] == rand.clean_correct.sum()

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from sklearn_robust import AdversarialClassifier
from sklearn_robust.metrics import empirical_local_lipschitz, make_lipschitz_scorer


def test_linear_model_lipschitz_matches_closed_form(small_digits):
    # logits W x + b: the ratio is ||W d||_1 / ||d||_inf, maximised over the box by
    # a sign vector; for interior points and eps large enough to reach it, the
    # estimate must approach sum_ij |W_ij| and never exceed it
    X, X_test, y, _ = small_digits
    est = LogisticRegression(max_iter=300).fit(X, y)
    W = est.coef_
    upper = np.abs(W).sum()
    values = empirical_local_lipschitz(est, np.full((5, 64), 0.5, np.float32),
                                       eps=0.1, n_steps=40, step_size=0.01,
                                       return_per_sample=True)
    assert np.all(values <= upper * (1 + 1e-3))
    # the sign ascent makes the ratio at least that of the clean-gradient direction
    best_single = max(np.abs(W @ np.sign(W[k])).sum() for k in range(W.shape[0]))
    assert values.min() >= 0.9 * best_single


def test_robust_training_lowers_lipschitz(small_digits):
    X, X_test, y, _ = small_digits
    common = dict(n_steps=5, step_size=0.04, max_epochs=15, random_state=0)
    natural = AdversarialClassifier(eps=0.0, **common).fit(X, y)
    robust = AdversarialClassifier(eps=0.1, **common).fit(X, y)
    lip_nat = empirical_local_lipschitz(natural, X_test, eps=0.1)
    lip_rob = empirical_local_lipschitz(robust, X_test, eps=0.1)
    assert lip_rob < 0.7 * lip_nat, (lip_nat, lip_rob)


def test_scorer_is_negative_lipschitz_and_works_in_cv(small_digits):
    X, X_test, y, _ = small_digits
    est = LogisticRegression(max_iter=200).fit(X, y)
    scorer = make_lipschitz_scorer(eps=0.05)
    assert scorer(est, X_test) == pytest.approx(
        -empirical_local_lipschitz(est, X_test, eps=0.05))
    scores = cross_val_score(LogisticRegression(max_iter=100), X, y, cv=2,
                             scoring=scorer)
    assert np.all(scores < 0)


def test_rng_untouched_and_bad_input(small_digits):
    X, X_test, y, _ = small_digits
    est = LogisticRegression(max_iter=100).fit(X, y)
    state = torch.get_rng_state()
    empirical_local_lipschitz(est, X_test[:10], eps=0.05)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="eps"):
        empirical_local_lipschitz(est, X_test, eps=-1)
    with pytest.raises(ValueError, match="clip range"):
        empirical_local_lipschitz(est, X_test + 2, eps=0.1)

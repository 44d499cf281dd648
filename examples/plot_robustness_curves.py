"""
==================================================
Robustness curves of several kinds of estimators
==================================================

:class:`~sklearn_robust.metrics.RobustnessCurveDisplay` draws robust accuracy
against the attack radius ``eps``. It takes any estimator that
:func:`~sklearn_robust.metrics.robust_accuracy_score` takes:

- the library's classifiers (here natural training and PGD adversarial
  training of the same MLP), attacked white-box;
- a scikit-learn :class:`~sklearn.pipeline.Pipeline` of a
  :class:`~sklearn.preprocessing.StandardScaler` and a
  :class:`~sklearn.linear_model.LogisticRegression`, which the library turns
  into an exact torch model and also attacks white-box;
- a :class:`~sklearn.ensemble.RandomForestClassifier`, which has no gradients:
  it is attacked through its predicted probabilities by the black-box Square
  attack, with a :class:`~sklearn_robust.exceptions.BlackBoxAttackWarning`.
  A black-box estimate is an *upper bound* on the true robust accuracy.

All curves use the ``"pgd"`` preset (one PGD-20 for the white-box models; for
the forest the preset's black-box budget, Square with 1000 queries) on 150 test
digits, which is cheap but optimistic; use ``attack=None`` (the strong
AutoAttack default) for numbers you report.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
import warnings

import matplotlib.pyplot as plt
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_robust import AdversarialClassifier
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.exceptions import BlackBoxAttackWarning
from sklearn_robust.metrics import RobustnessCurveDisplay

X, y = load_digits_images(flat=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)
X_eval, y_eval = X_test[:150], y_test[:150]

eps_train = 0.1
models = {
    "natural MLP": AdversarialClassifier(eps=0.0, max_epochs=30, random_state=0),
    "PGD-AT MLP": AdversarialClassifier(eps=eps_train, n_steps=10,
                                        step_size=2.5 * eps_train / 10,
                                        max_epochs=30, random_state=0),
    "scaler + logistic regression": make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000)),
    "random forest (black-box)": RandomForestClassifier(
        n_estimators=50, random_state=0),
}
for model in models.values():
    model.fit(X_train, y_train)

# %%
# One curve per model on shared axes
# ----------------------------------
radii = [0.0, 0.025, 0.05, 0.1, 0.15, 0.2]
fig, ax = plt.subplots(figsize=(6, 4))
for name, model in models.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BlackBoxAttackWarning)
        RobustnessCurveDisplay.from_estimator(model, X_eval, y_eval, eps=radii,
                                              attack="pgd", name=name, ax=ax)
    if any(issubclass(w.category, BlackBoxAttackWarning) for w in caught):
        print(f"{name}: {caught[0].message}")
ax.axvline(eps_train, color="0.6", ls=":", lw=1)
ax.set_title("digits, L-inf, preset \"pgd\"")
fig.tight_layout()
plt.show()

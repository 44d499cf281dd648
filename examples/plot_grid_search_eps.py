"""
=====================================================
Choosing the training radius with a robust scorer
=====================================================

The library's estimators and scorers are ordinary scikit-learn objects, so
:class:`~sklearn.model_selection.GridSearchCV` can select the training radius
``eps`` of :class:`~sklearn_robust.AdversarialClassifier` by *robust* accuracy
at the radius one wants to defend, here ``eps = 0.1``.

:func:`~sklearn_robust.metrics.make_robust_scorer` with the ``"pgd"`` preset
(one PGD-20) is cheap enough to run on every validation fold; a clean-accuracy
scorer runs beside it (multi-metric scoring, refit on the robust score). The
selected model is then checked once on 200 held-out digits with the ``"fast"``
preset (a reduced AutoAttack): the search's PGD-20 numbers are optimistic.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, train_test_split

from sklearn_robust import AdversarialClassifier
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import make_robust_scorer, robust_accuracy_score

X, y = load_digits_images(flat=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)

# step_size=None: 2.5 * eps / n_steps, so every training radius is reachable
base = AdversarialClassifier(n_steps=5, step_size=None, max_epochs=20,
                             random_state=0)
grid = {"eps": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]}
scoring = {"robust": make_robust_scorer(eps=0.1, attack="pgd"), "clean": "accuracy"}
search = GridSearchCV(base, grid, scoring=scoring, refit="robust", cv=3)
search.fit(X_train, y_train)
print("selected:", search.best_params_,
      f"(cross-validated PGD-20 accuracy {search.best_score_:.3f})")

# %%
# Robust and clean accuracy against the training radius
# -----------------------------------------------------
res = search.cv_results_
eps_values = np.array(grid["eps"])
fig, ax = plt.subplots(figsize=(6, 3.8))
for key, label in (("clean", "clean accuracy"),
                   ("robust", "robust accuracy at eps = 0.1 (PGD-20)")):
    ax.errorbar(eps_values, res[f"mean_test_{key}"], yerr=res[f"std_test_{key}"],
                marker="o", capsize=3, label=label)
ax.axvline(search.best_params_["eps"], color="0.6", ls=":", label="selected")
ax.set_xlabel("training eps")
ax.set_ylabel("3-fold cross-validated accuracy")
ax.set_ylim(0, 1.05)
ax.legend(loc="lower left")
fig.tight_layout()

# %%
# The selected model on held-out data
# -----------------------------------
best = search.best_estimator_
X_eval, y_eval = X_test[:200], y_test[:200]
print(f"clean accuracy:          {best.score(X_eval, y_eval):.3f}")
print("robust accuracy, PGD-20: "
      f"{robust_accuracy_score(best, X_eval, y_eval, eps=0.1, attack='pgd'):.3f}")
print("robust accuracy, fast:   "
      f"{robust_accuracy_score(best, X_eval, y_eval, eps=0.1, attack='fast'):.3f}")
plt.show()

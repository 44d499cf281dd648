"""
======================================
Local Lipschitzness and dropout
======================================

Yang et al. (2020) measure how smooth a classifier is around the data with the
*empirical local Lipschitz constant* of its logits,

.. math:: \\frac{1}{n} \\sum_i \\max_{\\|x' - x_i\\|_\\infty \\le \\epsilon}
          \\frac{\\|f(x_i) - f(x')\\|_1}{\\|x_i - x'\\|_\\infty},

and find that the methods which make a network locally smooth (adversarial
training, TRADES) leave a large gap between training and test accuracy, which
dropout narrows.

This example trains :class:`~sklearn_robust.LipschitzDropoutClassifier` with
TRADES (``beta = 6``) and with PGD adversarial training, each at three dropout
rates, on the default MLP, and measures on the test digits

- the empirical local Lipschitz constant
  (:func:`~sklearn_robust.metrics.empirical_local_lipschitz`, 10 sign-ascent
  steps in the ``eps = 0.1`` ball, on 200 points). The library's estimator
  *ascends* the ratio, as the definition's maximum requires; the authors' code
  descends, so its numbers are not comparable with the paper's tables;
- the generalisation gap (training minus test accuracy);
- robust accuracy under the ``"pgd"`` preset (PGD-20) on 200 points: a cheap
  check only, not a robustness claim.

Everything is small (20 epochs on 1257 digits) so the numbers are noisy; the
library's measured table is in ``benchmarks/results/``.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from sklearn_robust import LipschitzDropoutClassifier
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import empirical_local_lipschitz, robust_accuracy_score

X, y = load_digits_images(flat=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)
X_eval, y_eval = X_test[:200], y_test[:200]

eps = 0.1
dropouts = (0.0, 0.2, 0.5)
results = {}
for method in ("trades", "at"):
    for dropout in dropouts:
        # n_steps and step_size None: the paper's training attack (10 steps of
        # 2 eps / 10)
        clf = LipschitzDropoutClassifier(method=method, dropout=dropout, eps=eps,
                                         max_epochs=20, random_state=0)
        clf.fit(X_train, y_train)
        results[method, dropout] = {
            "lipschitz": empirical_local_lipschitz(clf, X_eval, eps=eps),
            "gap": clf.score(X_train, y_train) - clf.score(X_test, y_test),
            "robust": robust_accuracy_score(clf, X_eval, y_eval, eps=eps,
                                            attack="pgd"),
        }

print(f"{'method':<8}{'dropout':>8}{'Lipschitz':>11}{'gap':>8}{'PGD-20':>8}")
for (method, dropout), r in results.items():
    print(f"{method:<8}{dropout:>8.1f}{r['lipschitz']:>11.1f}{r['gap']:>8.3f}"
          f"{r['robust']:>8.3f}")

# %%
# Plot the three measures against the dropout rate
# ------------------------------------------------
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
labels = {"lipschitz": "empirical local Lipschitz (test)",
          "gap": "train - test accuracy", "robust": "robust accuracy (PGD-20)"}
for ax, key in zip(axes, labels):
    for method, name in (("trades", "TRADES (beta=6)"), ("at", "PGD-AT")):
        ax.plot(dropouts, [results[method, d][key] for d in dropouts], marker="o",
                label=name)
    ax.set_xlabel("dropout")
    ax.set_title(labels[key], fontsize=10)
axes[0].legend()
fig.tight_layout()
plt.show()

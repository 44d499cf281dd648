"""
=========================================================
Robust datasets: learn once, train many models naturally
=========================================================

A robust-dataset learner changes the *training set* so that ordinary (natural)
training on it gives a more robust model. The set is learned once; every model
trained on it afterwards costs a natural training, not an adversarial one.

This example learns a set with the fast configuration of
:class:`~sklearn_robust.TriLevelDatasetLearner` (a linear inner network, 300
outer steps; ``TriLevelDatasetLearner.fast()``) at ``eps = 0.1``, and the same
learner without the adversary (``eps = 0``), the control that tells whether the
attack or only the learning of a set helps. Three models are then trained
naturally on each set: two MLPs of the library (``eps=0`` means no attack) and a
scikit-learn logistic regression. All are scored on real test digits.

Robust accuracy uses the ``"fast"`` preset (a reduced AutoAttack) on 200 test
digits, to keep the example near a minute. The library's measured results, with
the strong scorer, three seeds and the slower default learner, are in
``benchmarks/README.md``: there, too, a learned set helps naturally trained MLPs
but stays well below adversarial training.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklearn_robust import AdversarialClassifier, TriLevelDatasetLearner
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import LearnedSetDisplay, robust_accuracy_score
from sklearn_robust.nn import MLP

X, y = load_digits_images(flat=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)
X_eval, y_eval = X_test[:200], y_test[:200]
eps = 0.1

# %%
# Learn the sets (once)
# ---------------------
# ``fit_transform`` returns the learned rows in the order of ``X_train``; the
# labels are unchanged.
sets = {"original rows": X_train}
for name, learn_eps in (("learned, eps=0.1", eps), ("learned, eps=0 (control)", 0.0)):
    start = time.perf_counter()
    learner = TriLevelDatasetLearner.fast(eps=learn_eps, random_state=0)
    sets[name] = learner.fit_transform(X_train, y_train)
    change = np.abs(sets[name] - X_train).max(axis=1).mean()
    print(f"{name}: learned in {time.perf_counter() - start:.0f} s, "
          f"mean per-row L-inf change {change:.2f}")

# %%
# Train many models naturally on each set
# ---------------------------------------
models = {
    "MLP(256, 256)": lambda: AdversarialClassifier(eps=0.0, max_epochs=50,
                                                   random_state=1),
    "MLP(64)": lambda: AdversarialClassifier(
        module=MLP, module__hidden_layer_sizes=(64,), eps=0.0, max_epochs=50,
        random_state=1),
    "logistic regression": lambda: LogisticRegression(max_iter=2000),
}
results = {}
for set_name, X_set in sets.items():
    for model_name, make in models.items():
        model = make().fit(X_set, y_train)
        results[set_name, model_name] = (
            model.score(X_eval, y_eval),
            robust_accuracy_score(model, X_eval, y_eval, eps=eps, attack="fast"))

print(f"{'training set':<26}{'model':<21}{'clean':>6}{'robust':>8}")
for (set_name, model_name), (clean, robust) in results.items():
    print(f"{set_name:<26}{model_name:<21}{clean:>6.3f}{robust:>8.3f}")

# %%
# Robust accuracy by model and training set
# -----------------------------------------
fig, ax = plt.subplots(figsize=(7, 3.8))
width = 0.8 / len(sets)
for i, set_name in enumerate(sets):
    ax.bar(np.arange(len(models)) + (i - (len(sets) - 1) / 2) * width,
           [results[set_name, m][1] for m in models], width=width, label=set_name)
ax.set_xticks(range(len(models)), list(models))
ax.set_ylabel(f"robust accuracy, eps = {eps} (\"fast\")")
ax.set_ylim(0, 1)
ax.legend(loc="upper right", fontsize=8)
ax.set_title("natural training on each set, real test digits")
fig.tight_layout()

# %%
# A few learned digits
# --------------------
# :class:`~sklearn_robust.metrics.LearnedSetDisplay` shows original rows, their
# learned versions and the change. The set could be kept with
# :func:`~sklearn_robust.dataset_learning.save_dataset` and read back with
# :func:`~sklearn_robust.dataset_learning.load_dataset`.
LearnedSetDisplay.from_arrays(X_train, sets["learned, eps=0.1"], labels=y_train,
                              n_images=8, image_shape=(8, 8))
plt.show()

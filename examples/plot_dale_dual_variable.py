"""
=========================================
DALE: the dual variable during training
=========================================

:class:`~sklearn_robust.LangevinAdvClassifier` implements DALE (Robey et al.,
2021): it minimises the robust loss on perturbations sampled by Langevin
dynamics, subject to the constraint that the clean (nominal) loss stays below a
``margin``. The constraint enters through a dual variable ``nu``::

    loss = l_rob + nu * l_nom
    nu  <- max(0, nu + dual_step_size * (l_nom - margin))     (every batch)

``nu`` grows while the clean loss is above the margin and shrinks towards 0 once
the constraint holds. The classifier records ``nu`` and the mean clean loss of
every epoch in ``history`` (and of every batch in ``history[:, "batches"]``).

The reference code's dual step (``dual_step_size=1e-3``, the default here) moves
``nu`` slowly: over the few hundred batches of this example it stays close to its
start. Larger steps show the primal-dual dynamics within a short run. Robust
accuracy is measured with the ``"fast"`` preset (a reduced AutoAttack) on 200
test digits, at ``eps = 0.1``; use the strong default, ``attack=None``, for a
claim.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split

from sklearn_robust import LangevinAdvClassifier
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import TrainingHistoryDisplay, robust_accuracy_score

X, y = load_digits_images(flat=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)
X_eval, y_eval = X_test[:200], y_test[:200]

eps, margin = 0.1, 0.1
models = {}
for dual_step in (1e-3, 0.05, 0.5):
    # Langevin sampler: 7 steps of eps / 3 (the ratio of the paper's MNIST setting)
    clf = LangevinAdvClassifier(eps=eps, n_steps=7, step_size=eps / 3,
                                margin=margin, dual_step_size=dual_step,
                                dual_init=1.0, max_epochs=40, random_state=0)
    models[dual_step] = clf.fit(X_train, y_train)

# %%
# The dual variable and the clean loss per epoch
# ----------------------------------------------
# ``nu`` rises while the mean clean loss is above the margin (dashed line) and
# turns down once the loss has crossed it; the larger the dual step, the larger
# the excursion. A large ``nu`` weights the clean loss heavily: compare the
# robust accuracies in the table below.
# :class:`~sklearn_robust.metrics.TrainingHistoryDisplay` draws any history key
# of a fitted classifier, one axes per key.
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
for step, clf in models.items():
    TrainingHistoryDisplay.from_estimator(
        clf, keys=["dual_variable", "nominal_loss"], ax=[ax0, ax1], name="",
        marker=".", label=f"dual_step_size={step:g}")
ax1.axhline(margin, color="k", ls="--", lw=1, label=f"margin = {margin}")
ax0.set_xlabel("epoch")
ax0.set_ylabel("dual variable nu")
ax0.legend()
ax1.set_xlabel("epoch")
ax1.set_ylabel("mean clean loss (training batches)")
ax1.set_yscale("log")
ax1.legend()
fig.tight_layout()

# %%
# Batch by batch
# --------------
# ``nu`` after every training batch, from the batch records of the history.
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for step, clf in models.items():
    nu = [b["dual_variable"] for epoch in clf.history for b in epoch["batches"]
          if "dual_variable" in b]
    ax.plot(nu, lw=1, label=f"dual_step_size={step:g}")
ax.set_xlabel("training batch")
ax.set_ylabel("nu")
ax.legend()
fig.tight_layout()

# %%
# Clean and robust accuracy
# -------------------------
print(f"{'dual_step_size':<16}{'final nu':>9}{'clean':>7}{'robust (fast)':>15}")
for step, clf in models.items():
    robust = robust_accuracy_score(clf, X_eval, y_eval, eps=eps, attack="fast")
    print(f"{step:<16g}{clf.dual_variable_:>9.3f}{clf.score(X_eval, y_eval):>7.3f}"
          f"{robust:>15.3f}")
plt.show()

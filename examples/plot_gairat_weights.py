"""
=====================================================
GAIRAT versus PGD adversarial training: the weights
=====================================================

GAIRAT (Zhang et al., 2021) is PGD adversarial training whose per-sample losses
are reweighted by the *geometry value* ``kappa``: the number of the ``K`` PGD
steps during which a training point was still classified correctly. Points that
are broken in few steps (close to the decision boundary) get large weights.

This example

1. draws the weight function ``w(kappa)`` for a few values of ``lambda``;
2. trains :class:`~sklearn_robust.GAIRATClassifier` and
   :class:`~sklearn_robust.AdversarialClassifier` (PGD-AT) with the same
   network, seed and training attack, and shows what GAIRAT recorded in its
   ``history`` at every epoch (the histogram of ``kappa`` and the effective
   sample size of the weights);
3. scores both under the ``"pgd"`` preset (one PGD-20) and the ``"fast"``
   preset (a reduced AutoAttack: APGD-CE, APGD-T, Square), on 200 test digits.

GAIRAT's reported gains were measured with PGD; a gap between the two presets
that is larger for GAIRAT than for PGD-AT is the sign of gradient masking that
later evaluations found (Hitaj et al., 2021). Settings are small to keep the
example fast (20 epochs, PGD-10 in training, ``eps = 0.1``); check a real
model with the strong default, ``attack=None``.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
# The weight function
# -------------------
# :func:`~sklearn_robust.classifiers.gair_weights` is the function the classifier
# uses (before the per-batch normalisation). ``lambda = inf`` gives uniform
# weights, i.e. plain PGD adversarial training.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split

from sklearn_robust import AdversarialClassifier, GAIRATClassifier
from sklearn_robust.classifiers import gair_weights
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import robust_accuracy_score

K = 10
kappa = np.arange(K + 1)
fig, ax = plt.subplots(figsize=(5, 3.2))
for lam in (-1.0, 0.0, 1.0, float("inf")):
    ax.plot(kappa, gair_weights(kappa, n_steps=K, gair_lambda=lam), marker="o",
            label=f"lambda = {lam:g}")
ax.set_xlabel("kappa (PGD steps the point stayed correct)")
ax.set_ylabel("unnormalised weight")
ax.set_title(f"GAIR weights, K = {K}")
ax.legend()
fig.tight_layout()

# %%
# Train both models
# -----------------
# The same training attack (PGD-10, step ``2.5 * eps / 10``) for both. GAIRAT
# trains its first half of the epochs as plain PGD-AT (``burn_in_epochs=0.5``,
# the paper's proportion), then reweights with ``lambda = -1``.
X, y = load_digits_images(flat=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)
X_eval, y_eval = X_test[:200], y_test[:200]

eps = 0.1
common = dict(eps=eps, n_steps=K, step_size=2.5 * eps / K, max_epochs=20,
              random_state=0)
gairat = GAIRATClassifier(gair_lambda=-1.0, burn_in_epochs=0.5, **common)
pgd_at = AdversarialClassifier(**common)
for model in (gairat, pgd_at):
    model.fit(X_train, y_train)

# %%
# What GAIRAT recorded
# --------------------
# :class:`~sklearn_robust.callbacks.GAIRMonitor` (a default callback of the
# classifier) adds per-epoch keys to ``history``: ``gair_kappa_hist`` counts the
# training points with each value of ``kappa``, ``gair_ess`` is the Kish
# effective sample size of the loss weights as a fraction of the samples (1 when
# all weights are equal, during the burn-in).
hist = np.array(gairat.history[:, "gair_kappa_hist"], dtype=float)
ess = np.array(gairat.history[:, "gair_ess"])
reweighting = np.array(gairat.history[:, "gair_reweighting"])
epochs = np.arange(1, len(hist) + 1)

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
im = ax0.imshow((hist / hist.sum(axis=1, keepdims=True)).T, origin="lower",
                aspect="auto", extent=(0.5, len(hist) + 0.5, -0.5, K + 0.5),
                cmap="viridis")
fig.colorbar(im, ax=ax0, label="fraction of training points")
ax0.set_xlabel("epoch")
ax0.set_ylabel("kappa")
ax0.set_title("geometry value per epoch")
ax1.plot(epochs, ess, marker="o")
ax1.axvspan(0.5, gairat.n_burn_in_epochs() + 0.5, color="0.9", label="burn-in")
ax1.set_xlabel("epoch")
ax1.set_ylabel("effective sample size (fraction)")
ax1.set_ylim(0, 1.05)
ax1.set_title("how many points the loss really uses")
ax1.legend(loc="lower left")
fig.tight_layout()
print("epochs with reweighting:", int(reweighting.sum()), "of", len(reweighting))
print("effective sample size in the last epoch:", round(float(ess[-1]), 3))

# %%
# The weights of the last training batch
# --------------------------------------
# ``gair_batch_`` keeps ``kappa`` and the weights of the last batch: the loss
# weights ``w~`` are normalised to sum to the batch size.
batch = gairat.gair_batch_
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.scatter(batch["kappa"].numpy(), batch["loss_weights"].numpy(), alpha=0.6)
ax.set_xlabel("kappa")
ax.set_ylabel("loss weight (normalised)")
ax.set_title("last training batch")
fig.tight_layout()

# %%
# Robust accuracy under two presets
# ---------------------------------
# ``"pgd"`` is one PGD-20 on the cross-entropy; ``"fast"`` is the library's
# reduced AutoAttack, with the scale-invariant targeted DLR loss and the
# black-box Square attack.
results = {}
for name, model in (("PGD-AT", pgd_at), ("GAIRAT", gairat)):
    results[name] = {
        "clean": model.score(X_eval, y_eval),
        "pgd": robust_accuracy_score(model, X_eval, y_eval, eps=eps, attack="pgd"),
        "fast": robust_accuracy_score(model, X_eval, y_eval, eps=eps, attack="fast"),
    }
print(f"{'model':<8}{'clean':>7}{'PGD-20':>8}{'fast AA':>9}")
for name, r in results.items():
    print(f"{name:<8}{r['clean']:>7.3f}{r['pgd']:>8.3f}{r['fast']:>9.3f}")

fig, ax = plt.subplots(figsize=(5.5, 3.4))
keys = ["clean", "pgd", "fast"]
for i, (name, r) in enumerate(results.items()):
    ax.bar(np.arange(3) + 0.38 * i - 0.19, [r[k] for k in keys], width=0.38,
           label=name)
ax.set_xticks(range(3), ["clean", "PGD-20 (\"pgd\")", "AutoAttack (\"fast\")"])
ax.set_ylim(0, 1.05)
ax.set_ylabel(f"accuracy, L-inf eps = {eps}")
ax.legend(loc="lower left")
fig.tight_layout()
plt.show()

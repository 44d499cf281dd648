"""
===============================================
Evaluating a plain torch model you already have
===============================================

The scorers do not need a model of this library: a ``torch.nn.Module`` that
returns logits is attacked as it is, with the class indices ``0 .. n_classes - 1``
as labels. This example trains a small network with an ordinary PyTorch loop,
then

- measures its robust accuracy with
  :func:`~sklearn_robust.metrics.robust_accuracy_score` (``"fast"`` preset, a
  reduced AutoAttack, on 200 test digits);
- runs :func:`~sklearn_robust.metrics.gradient_masking_report`, AutoAttack's
  sanity checks for a robustness number that is too good to be true, and the
  strong default evaluation on its 100 points, attack by attack
  (:func:`~sklearn_robust.metrics.robustness_report`);
- shows why the input normalisation belongs *inside* the model
  (:class:`~sklearn_robust.nn.Normalize` as the first layer): the threat model's
  ``eps`` is then a radius in pixel units. Normalising the data outside the
  model and attacking the normalised inputs with the same number silently
  attacks a smaller pixel radius (here ``eps`` times the pixel standard
  deviation), and the model looks more robust than it is.

The robustness curves use the ``"pgd"`` preset (PGD-20) to stay cheap.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
# A model trained with plain PyTorch
# ----------------------------------
import matplotlib.pyplot as plt
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import (
    RobustnessCurveDisplay,
    gradient_masking_report,
    robust_accuracy_score,
    robustness_report,
)
from sklearn_robust.nn import Normalize

X, y = load_digits_images(flat=True)        # pixels in [0, 1], labels 0..9
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0)
X_eval, y_eval = X_test[:200], y_test[:200]
mean, std = float(X_train.mean()), float(X_train.std())

torch.manual_seed(0)
body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
model = nn.Sequential(Normalize(mean=mean, std=std), body)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
xt, yt = torch.as_tensor(X_train), torch.as_tensor(y_train)
for epoch in range(60):
    for idx in torch.randperm(len(xt)).split(64):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()
model.eval()
with torch.no_grad():
    clean = (model(torch.as_tensor(X_eval)).argmax(1).numpy() == y_eval).mean()
print(f"clean accuracy: {clean:.3f}")

# %%
# Robust accuracy and the gradient-masking checks
# -----------------------------------------------
eps = 0.1
robust = robust_accuracy_score(model, X_eval, y_eval, eps=eps, attack="fast")
print(f"robust accuracy at L-inf eps={eps} (pixels), preset 'fast': {robust:.3f}")

report = gradient_masking_report(model, X_eval, y_eval, eps=eps, n_samples=100,
                                 warn=False)
for check, fired in report.flags.items():
    print(f"  {check:<28} {'FIRED: ' + report.messages[check] if fired else 'ok'}")
print("values:", {k: round(v, 3) for k, v in report.values.items()})

# %%
# A check that fires is a reason to look closer, not a verdict: each one
# names the numbers behind it (``report.values``; for instance how many points
# only the black-box Square attack fooled). The strong default evaluation
# (``attack=None``: AutoAttack's standard ensemble, white-box and black-box
# members, worst case per sample) is the number to report either way;
# :func:`~sklearn_robust.metrics.robustness_report` shows what each of its
# attacks did and cost:
strong = robustness_report(model, X_eval[:100], y_eval[:100], eps=eps)
print(strong)

# %%
# Normalisation inside versus outside the model
# ---------------------------------------------
# ``body`` alone expects normalised inputs. Feeding it normalised data and
# attacking with the same ``eps`` (with the clip box opened, since normalised
# values leave [0, 1]) is the classic mistake: the radius is then in units of
# ``std``, i.e. ``eps * std`` in pixels.
X_eval_norm = (X_eval - mean) / std
radii = [0.0, 0.025, 0.05, 0.1, 0.15, 0.2]
fig, ax = plt.subplots(figsize=(6, 4))
RobustnessCurveDisplay.from_estimator(
    model, X_eval, y_eval, eps=radii, attack="pgd", ax=ax,
    name="Normalize inside, eps in pixels (correct)")
RobustnessCurveDisplay.from_estimator(
    body, X_eval_norm, y_eval, eps=radii, attack="pgd", ax=ax, clip_min=None,
    clip_max=None, name=f"normalised outside, eps in std units (= {std:.2f} x pixels)")
ax.set_xlabel("eps as passed to the scorer (L-inf)")
ax.legend(loc="lower left", fontsize=8)
ax.set_title("same network, same numbers, different threat models", fontsize=10)
fig.tight_layout()
plt.show()

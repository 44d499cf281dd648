"""Attacks shared by training, scoring and dataset learning.

Every attack is a stateless estimator with ``perturb(model, X, y) -> X_adv``, where
``model`` is any torch callable returning logits.
"""

# SPDX-License-Identifier: BSD-3-Clause

from ._base import BaseAttack, is_attack
from ._losses import cw_loss, dlr_loss, kl_loss
from ._pgd import FGSM, PGD

__all__ = ["BaseAttack", "FGSM", "PGD", "is_attack", "cw_loss", "dlr_loss", "kl_loss"]

"""Attacks shared by training, scoring and dataset learning.

Every attack is a stateless estimator with ``perturb(model, X, y) -> X_adv``, where
``model`` is any torch callable returning logits.
"""

# SPDX-License-Identifier: BSD-3-Clause

from ._apgd import APGD, APGDT, apgd_checkpoints
from ._base import BaseAttack, is_attack
from ._ensemble import AutoAttack, attack_label, cascade
from ._fab import FAB, project_onto_hyperplane_box
from ._langevin import LangevinSampler
from ._local_linearity import LocalLinearityAttack
from ._logit_scaled import LogitScaledPGD
from ._losses import cw_loss, dlr_loss, kl_loss, targeted_dlr_loss
from ._pgd import FGSM, PGD
from ._square import Square

__all__ = ["BaseAttack", "FGSM", "PGD", "LangevinSampler", "is_attack", "cw_loss",
           "dlr_loss", "kl_loss", "targeted_dlr_loss",
           "APGD", "APGDT", "LogitScaledPGD", "Square", "AutoAttack", "cascade",
           "apgd_checkpoints", "LocalLinearityAttack", "FAB",
           "project_onto_hyperplane_box", "attack_label"]

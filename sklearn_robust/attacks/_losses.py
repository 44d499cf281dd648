"""Per-sample attack losses on logits (higher = worse for the classifier)."""

# SPDX-License-Identifier: BSD-3-Clause

import torch.nn.functional as F

__all__ = ["LOSSES", "get_loss", "ce_loss", "kl_loss", "cw_loss", "dlr_loss",
           "targeted_dlr_loss"]


def ce_loss(logits, y, clean_logits=None):
    """Cross-entropy of each sample."""
    return F.cross_entropy(logits, y, reduction="none")


def kl_loss(logits, y, clean_logits):
    """KL(softmax(clean) || softmax(adversarial)) of each sample (TRADES)."""
    log_p_clean = F.log_softmax(clean_logits, dim=1)
    log_p_adv = F.log_softmax(logits, dim=1)
    return (log_p_clean.exp() * (log_p_clean - log_p_adv)).sum(dim=1)


def _true_and_best_other(logits, y):
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf"))
    return true, other.max(dim=1).values


def cw_loss(logits, y, clean_logits=None):
    """Carlini-Wagner margin: best other logit minus the true logit."""
    true, best_other = _true_and_best_other(logits, y)
    return best_other - true


def dlr_loss(logits, y, clean_logits=None):
    """Difference of logits ratio (Croce & Hein, 2020); needs at least 3 classes."""
    if logits.shape[1] < 3:
        raise ValueError("The DLR loss needs at least 3 classes; use loss='cw' for "
                         "binary problems.")
    true, best_other = _true_and_best_other(logits, y)
    top = logits.topk(3, dim=1).values
    return -(true - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits, y, target):
    """Targeted difference of logits ratio (Croce & Hein, 2020), per sample.

    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` where ``z_pi1 >= z_pi2 >= ...``
    are the sorted logits. With 3 classes the denominator is ``z_pi1 - z_pi3``; with
    2 classes it is 1 (the plain logit margin towards the only other class).
    """
    n_classes = logits.shape[1]
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    if n_classes >= 4:
        top = logits.topk(4, dim=1).values
        denom = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3])
    elif n_classes == 3:
        top = logits.topk(3, dim=1).values
        denom = top[:, 0] - top[:, 2]
    else:
        return z_t - z_y
    return -(z_y - z_t) / (denom + 1e-12)


LOSSES = {"ce": ce_loss, "kl": kl_loss, "cw": cw_loss, "dlr": dlr_loss}


def get_loss(loss):
    """Resolve a loss name or callable ``loss(logits, y) -> per-sample tensor``."""
    if callable(loss):
        return lambda logits, y, clean_logits=None: loss(logits, y)
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}."
        ) from None

"""Per-sample attack losses on logits (higher = worse for the classifier).

The public functions check their arguments; the attacks and training loops call
the private ones (``_cw_loss``, ...), which do not, in their inner loops.
"""

# SPDX-License-Identifier: BSD-3-Clause

import torch.nn.functional as F

from ..utils._validation import check_class_codes, check_logits

__all__ = ["LOSSES", "get_loss", "ce_loss", "kl_loss", "cw_loss", "dlr_loss",
           "targeted_dlr_loss"]


def _ce_loss(logits, y, clean_logits=None):
    """Cross-entropy of each sample."""
    return F.cross_entropy(logits, y, reduction="none")


def _kl_loss(logits, y, clean_logits):
    """KL(softmax(clean) || softmax(adversarial)) of each sample (TRADES)."""
    log_p_clean = F.log_softmax(clean_logits, dim=1)
    log_p_adv = F.log_softmax(logits, dim=1)
    return (log_p_clean.exp() * (log_p_clean - log_p_adv)).sum(dim=1)


def _true_and_best_other(logits, y):
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf"))
    return true, other.max(dim=1).values


def _cw_loss(logits, y, clean_logits=None):
    """Carlini-Wagner margin: best other logit minus the true logit."""
    true, best_other = _true_and_best_other(logits, y)
    return best_other - true


def _dlr_loss(logits, y, clean_logits=None):
    """Difference of logits ratio (Croce & Hein, 2020); needs at least 3 classes."""
    if logits.shape[1] < 3:
        raise ValueError("The DLR loss needs at least 3 classes; use loss='cw' for "
                         "binary problems.")
    true, best_other = _true_and_best_other(logits, y)
    top = logits.topk(3, dim=1).values
    return -(true - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def _targeted_dlr_loss(logits, y, target):
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


LOSSES = {"ce": _ce_loss, "kl": _kl_loss, "cw": _cw_loss, "dlr": _dlr_loss}


def _checked(logits, y=None, clean_logits=None, target=None):
    logits = check_logits(logits)
    n, n_classes = logits.shape
    codes = [None if t is None else check_class_codes(
        t, n_samples=n, n_classes=n_classes, name=name, device=logits.device,
        rows_of="logits")
        for name, t in (("y", y), ("target", target))]
    if clean_logits is not None:
        clean_logits = check_logits(clean_logits, "clean_logits", n_samples=n)
        if clean_logits.shape != logits.shape:
            raise ValueError(f"clean_logits has shape {tuple(clean_logits.shape)}, "
                             f"logits {tuple(logits.shape)}: they must match.")
    return logits, codes[0], clean_logits, codes[1]


_ARGS = """
    Parameters
    ----------
    logits : tensor of shape (n_samples, n_classes)
        Finite floating scores.
    y : tensor or array-like of shape (n_samples,)
        True class indices in ``[0, n_classes)``.{extra}

    Returns
    -------
    loss : tensor of shape (n_samples,)

    Raises
    ------
    ValueError, TypeError
        If ``logits`` is not a finite 2-D floating tensor, or the class indices
        are not 1-D integers in range with one per row.
"""


def ce_loss(logits, y, clean_logits=None):
    logits, y, _, _ = _checked(logits, y)
    return _ce_loss(logits, y)


def kl_loss(logits, y, clean_logits):
    logits, _, clean_logits, _ = _checked(logits, clean_logits=clean_logits)
    return _kl_loss(logits, y, clean_logits)


def cw_loss(logits, y, clean_logits=None):
    logits, y, _, _ = _checked(logits, y)
    return _cw_loss(logits, y)


def dlr_loss(logits, y, clean_logits=None):
    logits, y, _, _ = _checked(logits, y)
    return _dlr_loss(logits, y)


def targeted_dlr_loss(logits, y, target):
    logits, y, _, target = _checked(logits, y, target=target)
    return _targeted_dlr_loss(logits, y, target)


_CLEAN = """
    clean_logits : tensor of shape (n_samples, n_classes)
        Scores of the clean inputs."""
_UNUSED = """
    clean_logits : None
        Ignored (the signature shared by the attacks' losses)."""
for _public, _extra in ((ce_loss, _UNUSED), (kl_loss, _CLEAN), (cw_loss, _UNUSED),
                        (dlr_loss, _UNUSED),
                        (targeted_dlr_loss, """
    target : tensor or array-like of shape (n_samples,)
        Target class indices in ``[0, n_classes)``.""")):
    _public.__doc__ = (globals()["_" + _public.__name__].__doc__.rstrip()
                       + "\n" + _ARGS.format(extra=_extra))


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

"""Robust accuracy: a picklable scorer and its functional form."""

# SPDX-License-Identifier: BSD-3-Clause

import time
import warnings
from numbers import Integral

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from ..attacks import PGD, AutoAttack, BaseAttack, cascade
from ..attacks._base import set_threat_model
from ..exceptions import BlackBoxAttackWarning, ThreatModelWarning
from ..utils._param_validation import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    StrOptions,
    validate_function_params,
)
from ..utils._torch import PRECISIONS, autocast, flat_norm
from ..utils._validation import (
    check_clip_box,
    check_eps,
    check_float_tensor,
    check_in_box,
    check_norm,
    check_sample_weight,
)
from ..utils._views import TorchView, get_score_view, get_torch_view, transformer_view
from ._report import RobustnessReport

__all__ = ["RobustScorer", "make_robust_scorer", "robust_accuracy_score",
           "robust_correct", "robustness_report", "ATTACK_PRESETS"]


def _pgd20():
    return [PGD(n_steps=20, step_size=None, random_start=True, loss="ce")]


def _strong():
    return [AutoAttack(version="standard")]


def _fast():
    return [AutoAttack(version="fast")]


#: Named attack settings of the scorers: ``"strong"`` (the default, AutoAttack's
#: standard ensemble), ``"fast"`` (a cheaper AutoAttack) and ``"pgd"`` (PGD-20).
ATTACK_PRESETS = {"pgd": _pgd20, "fast": _fast, "strong": _strong}


def _resolve_attacks(attack, *, eps, norm, clip_min, clip_max, random_state):
    """A list of attack instances carrying the scorer's threat model."""
    items = attack if isinstance(attack, (list, tuple)) else [attack]
    if not items:
        raise ValueError("attack must not be an empty list.")
    attacks = []
    for item in items:
        if item is None:
            item = "strong"
        if isinstance(item, str):
            if item not in ATTACK_PRESETS:
                raise ValueError(f"Unknown attack preset {item!r}; choose one of "
                                 f"{sorted(ATTACK_PRESETS)} or pass attack objects.")
            attacks.extend(ATTACK_PRESETS[item]())
        elif isinstance(item, BaseAttack):
            attacks.append(clone(item))
        else:
            raise TypeError(f"attack must be None, a preset name, an attack of "
                            f"sklearn_robust.attacks or a list of them; got {item!r}.")
    for a in attacks:
        set_threat_model(a, eps=eps, norm=norm, clip_min=clip_min, clip_max=clip_max)
        if "random_state" in a.get_params() and a.random_state is None:
            a.set_params(random_state=random_state)
    return attacks


#: Query budget of the black-box fallback, per preset.
_SQUARE_QUERIES = {"pgd": 1000, "fast": 1000, "strong": 5000}


def _black_box_attacks(estimator, attacks, requested, reason, threat):
    """Score-based attacks for an estimator without a differentiable view."""
    from ..attacks import Square

    if all(isinstance(a, Square) for a in attacks):
        return attacks
    queries = _SQUARE_QUERIES.get(requested if isinstance(requested, str) else "strong")
    warnings.warn(
        f"{type(estimator).__name__} cannot be attacked white-box ({reason}) so its "
        f"robust accuracy is estimated with the black-box Square attack "
        f"({queries} queries) instead of the requested gradient attacks. A black-box "
        "estimate is an upper bound on the true robust accuracy.",
        BlackBoxAttackWarning, stacklevel=3)
    return _resolve_attacks(Square(n_queries=queries), **threat)


def check_scoring_data(estimator, X, y=None, *, clip_min, clip_max, labels=True):
    """The clean data of a robustness metric, checked once: ``(X, y)`` as arrays.

    ``X`` must be real (not complex, boolean or text), finite, non-empty, inside the
    clip box and shaped as the fitted ``estimator`` expects (its ``input_shape_``,
    else its ``n_features_in_``); ``y`` (when ``labels``) one label per row.
    Negative strides are fine. Raises a ``ValueError`` or ``TypeError`` naming the
    problem.
    """
    x = check_float_tensor(X, "X", min_ndim=2, dtype=torch.float32)
    check_in_box(x, clip_min, clip_max)
    got = tuple(x.shape[1:])
    shape = getattr(estimator, "input_shape_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    expected = (tuple(shape) if shape is not None
                else (int(n_features),) if n_features is not None else got)
    if got != expected:
        raise ValueError(f"X has samples of shape {got}, but "
                         f"{type(estimator).__name__} was fitted on samples of shape "
                         f"{expected}.")
    X = x.cpu().numpy()
    if not labels:
        return X, None
    if y is None:
        raise ValueError("y is required: the true labels of X.")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y must have shape ({len(X)},), one label per row of X; "
                         f"got shape {y.shape}.")
    return X, y


@validate_function_params({"batch_size": [POSITIVE_INT], "verbose": [NON_NEGATIVE_INT],
                           "n_jobs": [Integral, None],
                           "precision": [StrOptions(set(PRECISIONS))]})
def robustness_report(estimator, X, y, *, eps, norm="linf", attack=None, clip_min=0.0,
                      clip_max=1.0, batch_size=256, random_state=0, verbose=0,
                      n_jobs=None, precision="fp32"):
    """Evaluate robustness per sample and per attack, with what each attack cost.

    The attacks run as a worst-case cascade, as in :func:`robust_accuracy_score`
    (which returns this report's ``robust_accuracy``): each attack (each member
    of an :class:`~sklearn_robust.attacks.AutoAttack`) attacks the points still
    robust, so each point is charged to the first attack that fooled it.

    Parameters
    ----------
    estimator : fitted estimator or torch.nn.Module
        As in :func:`robust_accuracy_score`.
    X : array-like of shape (n_samples, ...)
        Clean inputs, inside ``[clip_min, clip_max]``.
    y : array-like of shape (n_samples,)
        True labels.
    eps : float
        Radius of the threat model.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    attack : None, str, attack or list, default=None
        As in :func:`robust_accuracy_score` (None: AutoAttack's standard version).
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    batch_size : int, default=256
        Samples attacked at once by each attack.
    random_state : int, RandomState instance or None, default=0
        Seeds the random starts of attacks that have no ``random_state`` of
        their own.
    verbose : int, default=0
        If > 0, print the clean accuracy and the robust accuracy after each attack
        with its time, with a progress bar per attack when tqdm is installed.
    n_jobs : int or None, default=None
        Shards of ``X`` evaluated in parallel with joblib: ``None`` evaluates
        ``X`` in one piece (also inside a :func:`joblib.parallel_config` context,
        so that a score never depends on the backend), -1 one shard per
        worker of the active joblib backend. Under
        joblib's Dask backend (``with joblib.parallel_config("dask"):`` after
        starting a ``dask.distributed.Client``) the shards run on the cluster's
        workers, each on the device of the model (one GPU per worker with
        ``CUDA_VISIBLE_DEVICES``). Each shard is attacked as its own cascade
        with the same seeds, so attacks with random starts draw other starts
        than a serial run; deterministic attacks give the same result. The
        per-attack times of a sharded report are summed over the shards.
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Numeric precision of the model's forward passes during the attacks:
        float32, or :func:`torch.autocast` to bfloat16 or float16 (the logits come
        back in float32, the attacks' arithmetic stays in float32). Coarser
        gradients can weaken the attacks: trust a lower precision only where its
        robust accuracy matches float32's (``benchmarks/precision.py``).

    Returns
    -------
    report : RobustnessReport
        Clean and robust accuracy, the per-sample robust mask, adversarial
        examples, the attack that fooled each point and the perturbation norms,
        and per attack the robust accuracy after it, its wall time and its
        forward and backward passes per sample. ``print(report)`` shows the
        table; ``report.to_frame()`` gives it as a pandas DataFrame.

    Raises
    ------
    ValueError, TypeError
        As :func:`robust_accuracy_score`.

    See Also
    --------
    robust_accuracy_score : The robust accuracy alone.

    References
    ----------
    .. [1] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020,
       arXiv:2003.01690.
    .. [2] J. Rony and I. Ben Ayed, "Adversarial Library" (adv-lib), which counts
       the forward and backward passes of attacks per sample.
    """
    start = time.perf_counter()
    check_eps(eps)
    check_norm(norm)
    check_clip_box(clip_min, clip_max)
    X, y = check_scoring_data(estimator, X, y, clip_min=clip_min, clip_max=clip_max)
    _warn_if_trained_in_other_units(estimator)
    threat = dict(eps=eps, norm=norm, clip_min=clip_min, clip_max=clip_max,
                  random_state=random_state)
    attacks = _resolve_attacks(attack, **threat)
    black_box = False
    try:
        view = get_torch_view(estimator)
    except TypeError as exc:
        view = get_score_view(estimator)
        attacks = _black_box_attacks(estimator, attacks, attack, exc, threat)
        black_box = True
    view.resolve_classes(X)
    if precision != "fp32":
        view = TorchView(_Autocast(view.module, precision), view.classes)
    n_shards = 1 if n_jobs is None else min(effective_n_jobs(n_jobs), len(X))
    shards = np.array_split(np.arange(len(X)), n_shards)
    run = delayed(_report_on_view)
    reports = Parallel(n_jobs=n_shards)(
        run(view, X[rows], y[rows], attacks, eps=eps, norm=norm, clip_min=clip_min,
            clip_max=clip_max, batch_size=batch_size, verbose=verbose)
        for rows in shards)
    report = RobustnessReport.concatenate(reports)
    report.black_box = black_box
    report.wall_time = time.perf_counter() - start
    return report


class _Autocast(torch.nn.Module):
    """``module`` run under :func:`torch.autocast` to ``precision``; float32 logits."""

    def __init__(self, module, precision):
        super().__init__()
        self.module = module
        self.precision = precision

    def forward(self, x):
        with autocast(self.precision, x.device):
            out = self.module(x)
        return out.float() if out.is_floating_point() else out


def _warn_if_trained_in_other_units(estimator):
    """Warn when a pipeline's robust classifier follows a preprocessing step: it
    was trained with its ``eps`` in the preprocessed units, while the attacks
    here perturb the pipeline's inputs."""
    best = getattr(estimator, "best_estimator_", None)
    estimator = estimator if best is None else best
    if not isinstance(estimator, Pipeline):
        return
    final = estimator.steps[-1][1]
    if not (callable(getattr(final, "robust_loss", None)) and getattr(final, "eps", 0)):
        return
    moving = [name for name, step in estimator.steps[:-1]
              if not isinstance(transformer_view(step), torch.nn.Identity)]
    if moving:
        warnings.warn(
            f"The pipeline's {type(final).__name__} was trained against attacks of "
            f"radius eps={final.eps} on the output of {moving}, but the scorer "
            "attacks the pipeline's inputs, so the two radii are in different "
            "units and the robust accuracy measures another threat model. Pass the "
            "preprocessing as the classifier's preprocessor= so that it trains "
            "against attacks on the raw inputs.", ThreatModelWarning, stacklevel=4)


def robust_correct(estimator, X, y, *, eps, norm="linf", attack=None, clip_min=0.0,
                   clip_max=1.0, batch_size=256, random_state=0, verbose=0,
                   precision="fp32"):
    """Per-sample robustness: True where the prediction is right under every attack.

    Attacks run as a cascade: each one only sees the points still classified
    correctly, so the result is the worst case per sample over all attacks. The
    members of an :class:`~sklearn_robust.attacks.AutoAttack` are cascade steps of
    their own. Each step attacks the points still robust in batches of at most
    ``batch_size``. Parameters are those of :func:`robust_accuracy_score`;
    :func:`robustness_report` gives the same mask with the details.

    Returns
    -------
    correct : ndarray of bool, shape (n_samples,)
    """
    return robustness_report(estimator, X, y, eps=eps, norm=norm, attack=attack,
                             clip_min=clip_min, clip_max=clip_max,
                             batch_size=batch_size, random_state=random_state,
                             verbose=verbose, precision=precision).robust


def _report_on_view(view, X, y, attacks, *, eps, norm, clip_min, clip_max, batch_size,
                    verbose=0):
    """:func:`robustness_report` on a torch view, with the attacks ready to run.

    Parameters
    ----------
    view : TorchView
        The attacked model, from :func:`~sklearn_robust.utils.get_torch_view` or
        :func:`~sklearn_robust.utils.get_score_view`.
    X, y : array-like
        Clean inputs (inside the clip box) and their labels.
    attacks : list of attacks
        Run as a :func:`~sklearn_robust.attacks.cascade`, as given.
    eps, norm : float, str
        The threat model (recorded, and the norm of the perturbation norms).
    clip_min, clip_max : float or None
        The attacks' clip box (``X`` was checked against it).
    batch_size : int
        Points attacked at once by each step of the cascade.
    verbose : int, default=0
        Passed to the cascade.

    Returns
    -------
    report : RobustnessReport
    """
    start = time.perf_counter()
    # X and y were validated by check_scoring_data; the attacks skip their checks
    x_all = torch.as_tensor(X)  # stays on the host; batches move to the device
    t_all = torch.as_tensor(view.encode(y))
    x_adv, ok, info = cascade(attacks, view, x_all, t_all, check_input=False,
                              return_info=True, batch_size=batch_size,
                              device=view.device, verbose=verbose)
    n = len(x_all)
    names = _unique([step["name"] for step in info["steps"]])
    rows = [dict(attack=name, robust_accuracy=step["n_robust"] / n,
                 n_attacked=step["n_attacked"], n_fooled=step["n_fooled"],
                 time_s=step["time_s"], n_forward=step["n_forward"],
                 n_backward=step["n_backward"],
                 forward_per_sample=step["n_forward"] / max(step["n_attacked"], 1),
                 backward_per_sample=step["n_backward"] / max(step["n_attacked"], 1))
            for name, step in zip(names, info["steps"])]
    fooled_by = np.array([*names, None], dtype=object)[info["fooled_by_step"].numpy()]
    return RobustnessReport(
        eps=float(eps), norm=norm, clip_min=clip_min, clip_max=clip_max,
        clean_correct=info["clean_correct"].numpy(), robust=ok.numpy(),
        X_adv=x_adv.numpy(), fooled_by=fooled_by,
        perturbation_norm=flat_norm(x_adv - x_all, norm).numpy(), attacks=rows,
        wall_time=time.perf_counter() - start)


def _unique(names):
    """``names`` with repeats numbered: ``["pgd-20", "pgd-20#2"]``."""
    seen = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _robust_correct_on_view(view, X, y, attacks, *, clip_min, clip_max, batch_size):
    """The robust mask of :func:`_report_on_view` (the threat model is the attacks')."""
    return _report_on_view(view, X, y, attacks, eps=0.0, norm="linf",
                           clip_min=clip_min, clip_max=clip_max,
                           batch_size=batch_size).robust


def robust_accuracy_score(estimator, X, y, *, eps, norm="linf", attack=None,
                          clip_min=0.0, clip_max=1.0, batch_size=256,
                          sample_weight=None, random_state=0, verbose=0,
                          precision="fp32"):
    """Accuracy of a fitted estimator under adversarial attack.

    Parameters
    ----------
    estimator : fitted estimator or torch.nn.Module
        A classifier of this library, a skorch net returning logits, a
        :class:`~sklearn.pipeline.Pipeline` ending in one whose other steps have
        exact torch equivalents (see :func:`~sklearn_robust.utils.get_torch_view`
        for scikit-learn's own models), or a plain torch module returning logits,
        whose labels ``y`` are then the class indices ``0 .. n_classes - 1`` (it
        is evaluated in eval mode, on the device of its parameters).
    X : array-like of shape (n_samples, ...)
        Clean inputs, inside ``[clip_min, clip_max]``.
    y : array-like of shape (n_samples,)
        True labels.
    eps : float
        Radius of the threat model.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    attack : None, str, attack or list, default=None
        ``None`` or ``"strong"``: AutoAttack's standard ensemble (APGD-CE,
        targeted APGD-DLR over 9 classes, FAB-T over 9 classes, Square with 5000
        queries) as a worst-case cascade. ``"fast"``: a cheaper AutoAttack
        (APGD-CE 50, APGD-T 3x50, Square 1000). ``"pgd"``: one PGD-20, cheap
        enough for grid searches and training monitors, but too weak to claim
        robustness. An attack object, or a list of attacks and presets, gives
        full control; a list is evaluated as the worst case per sample. The
        scorer's ``eps``, ``norm`` and clip box override those of the given
        attacks. An estimator with no differentiable view (forests, k-NN, kernel
        SVMs, ...) is attacked with the black-box Square attack instead, with a
        :class:`BlackBoxAttackWarning`.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    batch_size : int, default=256
        Samples attacked at once. Each attack (each member of an AutoAttack
        ensemble) attacks the points still robust, in full batches.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the samples.
    random_state : int, RandomState instance or None, default=0
        Seeds the random starts of attacks that have no ``random_state`` of
        their own.
    verbose : int, default=0
        If > 0, print the clean accuracy and the robust accuracy after each attack
        with its time, with a progress bar per attack when tqdm is installed.
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Numeric precision of the model during the attacks (see
        :func:`robustness_report`).

    Returns
    -------
    score : float
        Fraction of samples classified correctly under every attack.

    Raises
    ------
    ValueError, TypeError
        If a parameter is invalid, or ``X`` is empty, not real, not finite, outside
        the clip box or not shaped as the estimator's inputs, ``y`` does not give
        one label seen in fit per row, or ``sample_weight`` is not finite,
        non-negative and of length ``n_samples`` with a positive sum.

    References
    ----------
    .. [1] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020,
       arXiv:2003.01690 (the worst-case cascade).
    """
    correct = robust_correct(estimator, X, y, eps=eps, norm=norm, attack=attack,
                             clip_min=clip_min, clip_max=clip_max,
                             batch_size=batch_size, random_state=random_state,
                             verbose=verbose, precision=precision)
    return float(np.average(correct,
                            weights=check_sample_weight(sample_weight, len(correct))))


class RobustScorer:
    """A picklable scorer ``scorer(estimator, X, y) -> robust accuracy``.

    Works wherever scikit-learn takes a scorer (``GridSearchCV(scoring=...)``,
    ``cross_validate``, alone or in a dict) and in skorch's ``EpochScoring``
    (use ``use_caching=False``: robust scores need fresh forward passes).
    Parameters are those of :func:`robust_accuracy_score`.

    Examples
    --------
    >>> from sklearn_robust.metrics import make_robust_scorer
    >>> scorer = make_robust_scorer(eps=0.1, attack="pgd")
    >>> scorer
    RobustScorer(eps=0.1, norm='linf', attack='pgd')
    """

    def __init__(self, *, eps, norm="linf", attack=None, clip_min=0.0, clip_max=1.0,
                 batch_size=256, random_state=0, verbose=0, precision="fp32"):
        check_eps(eps)
        check_norm(norm)
        check_clip_box(clip_min, clip_max)
        self.eps = eps
        self.norm = norm
        self.attack = attack
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose
        self.precision = precision

    def __call__(self, estimator, X, y, sample_weight=None):
        return robust_accuracy_score(
            estimator, X, y, eps=self.eps, norm=self.norm, attack=self.attack,
            clip_min=self.clip_min, clip_max=self.clip_max, batch_size=self.batch_size,
            sample_weight=sample_weight, random_state=self.random_state,
            verbose=getattr(self, "verbose", 0),
            precision=getattr(self, "precision", "fp32"))

    def __repr__(self):
        extra = "" if self.attack is None else f", attack={self.attack!r}"
        return f"RobustScorer(eps={self.eps!r}, norm={self.norm!r}{extra})"


def make_robust_scorer(*, eps, norm="linf", attack=None, clip_min=0.0, clip_max=1.0,
                       batch_size=256, random_state=0, verbose=0, precision="fp32"):
    """Make a robust-accuracy scorer for model selection and monitoring.

    Parameters are those of :func:`robust_accuracy_score`.

    Returns
    -------
    scorer : RobustScorer
        Picklable callable ``scorer(estimator, X, y)``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_robust import AdversarialClassifier
    >>> from sklearn_robust.metrics import make_robust_scorer
    >>> search = GridSearchCV(AdversarialClassifier(n_steps=3),
    ...                       {"eps": [0.05, 0.1]},
    ...                       scoring=make_robust_scorer(eps=0.1, attack="pgd"))
    """
    return RobustScorer(eps=eps, norm=norm, attack=attack, clip_min=clip_min,
                        clip_max=clip_max, batch_size=batch_size,
                        random_state=random_state, verbose=verbose,
                        precision=precision)

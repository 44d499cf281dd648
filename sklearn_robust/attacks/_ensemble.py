"""AutoAttack-style ensembles: a worst-case cascade of attacks (Croce & Hein, 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import time
import warnings

import numpy as np
import torch
from sklearn.base import clone

from ..exceptions import GradientMaskingWarning
from ..utils._param_validation import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    validate_function_params,
)
from ..utils._progress import log_line, progress_bar
from ..utils._torch import as_tensor, eval_mode, make_generator
from ._apgd import APGD, APGDT
from ._base import (
    BaseAttack,
    check_attack_input,
    checking_logits,
    is_attack,
    predict_labels,
    set_threat_model,
)
from ._fab import FAB
from ._logit_scaled import LogitScaledPGD
from ._pgd import FGSM, PGD
from ._square import Square

__all__ = ["AutoAttack", "cascade", "attack_label", "AUTOATTACK_VERSIONS",
           "ATTACK_NAMES"]


def _named_attacks():
    return {
        "apgd-ce": lambda: APGD(loss="ce"),
        "apgd-dlr": lambda: APGD(loss="dlr"),
        "apgd-t": lambda: APGDT(),
        "fab": lambda: FAB(),
        "fab-t": lambda: FAB(targeted=True),
        "square": lambda: Square(),
        "logit-scaled-pgd": lambda: LogitScaledPGD(n_steps=20),
    }


#: Names accepted in ``AutoAttack(attacks=[...])``.
ATTACK_NAMES = tuple(_named_attacks())


def _standard(norm):
    # as the authors' set_version("standard"): for L1, APGD-CE with 5 restarts and
    # APGD-T with 5 target classes, both on the schedule of radii 3, 2, 1 x eps
    # (use_largereps); FAB-T and Square as for L-inf and L2, in their L1 versions
    l1 = norm == "l1"
    return [APGD(loss="ce", n_iter=100, n_restarts=5 if l1 else 1,
                 use_largereps=l1),
            APGDT(n_iter=100, n_target_classes=5 if l1 else 9, n_restarts=1,
                  use_largereps=l1),
            FAB(targeted=True, n_iter=100, n_target_classes=9, n_restarts=1),
            Square(n_queries=5000, p_init=0.8, n_restarts=1, rescale_schedule=False)]


def _plus(norm):
    # as set_version("plus"), for every norm (the authors' code asks to check the
    # results for L1): one FAB object there serves "fab" with its 5 restarts and
    # "fab-t", run with n_restarts set to 1 (run_standard_evaluation); Square
    # keeps its single run
    if norm == "l1":
        warnings.warn(
            "AutoAttack's 'plus' version is designed for L-inf and L2: with "
            "norm='l1' its attacks run without the L1 schedule of the 'standard' "
            "version (as in the authors' code, which asks to check the results).",
            UserWarning, stacklevel=4)
    return [APGD(loss="ce", n_iter=100, n_restarts=5),
            APGD(loss="dlr", n_iter=100, n_restarts=5),
            FAB(n_iter=100, n_restarts=5),
            Square(n_queries=5000, p_init=0.8, n_restarts=1, rescale_schedule=False),
            APGDT(n_iter=100, n_target_classes=9, n_restarts=1),
            FAB(targeted=True, n_iter=100, n_target_classes=9, n_restarts=1)]


def _rand(norm):
    # as set_version("rand"), for every norm
    return [APGD(loss="ce", n_iter=100, eot_iter=20),
            APGD(loss="dlr", n_iter=100, eot_iter=20)]


def _fast(norm):
    # this library's: half the iterations; the L1 schedule for L1 (at no cost)
    l1 = norm == "l1"
    return [APGD(loss="ce", n_iter=50, use_largereps=l1),
            APGDT(n_iter=50, n_target_classes=3, use_largereps=l1),
            Square(n_queries=1000, p_init=0.8)]


#: Attack lists of the ``version`` presets of :class:`AutoAttack`, as functions
#: of the threat model's norm.
AUTOATTACK_VERSIONS = {"standard": _standard, "plus": _plus, "rand": _rand,
                       "fast": _fast}


def attack_label(attack):
    """A short name for an attack, as AutoAttack's logs name its members.

    ``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``, ``"fab"``, ``"fab-t"``,
    ``"square"``, ``"pgd-20"``, ...; other objects get their class name in lower
    case.
    """
    if isinstance(attack, APGDT):
        return "apgd-t"
    if isinstance(attack, APGD):
        return f"apgd-{attack.loss}"
    if isinstance(attack, FAB):
        return "fab-t" if attack.targeted else "fab"
    if isinstance(attack, Square):
        return "square"
    if isinstance(attack, LogitScaledPGD):
        return "logit-scaled-pgd"
    if isinstance(attack, FGSM):
        return "fgsm"
    if isinstance(attack, PGD):
        loss = "" if attack.loss == "ce" else f"-{attack.loss}"
        return f"pgd-{attack.n_steps}{loss}"
    return type(attack).__name__.lower()


class _PassCounter(torch.nn.Module):
    """``model`` counting the samples of its forward and backward passes.

    A backward pass is counted when a gradient reaches the model's output, so a
    Jacobian computed one class at a time counts one backward per class, as
    adv-lib counts them.
    """

    def __init__(self, model):
        super().__init__()
        if isinstance(model, torch.nn.Module):
            self.model = model
        else:  # any torch callable
            object.__setattr__(self, "model", model)
        self.n_forward = 0
        self.n_backward = 0

    def forward(self, x):
        out = self.model(x)
        n = int(x.shape[0])
        self.n_forward += n
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda grad: self._count_backward(n))
        return out

    def _count_backward(self, n):
        self.n_backward += n


@validate_function_params({"batch_size": [POSITIVE_INT, None],
                           "verbose": [NON_NEGATIVE_INT]})
def cascade(attacks, model, X, y, *, return_info=False, check_input=True,
            batch_size=None, device=None, verbose=0):
    """Run attacks as a worst-case cascade and return the robust mask.

    The points the model classifies correctly are attacked by the first attack;
    each following attack only sees the points that are still classified
    correctly. A point is robust when no attack fooled it, so the robust mask is
    the logical AND of the members' per-sample robustness (up to the random starts
    each member draws on the subset it sees).

    Parameters
    ----------
    attacks : list of attacks
        Objects with ``perturb(model, X, y)`` (e.g. the attacks of
        :mod:`sklearn_robust.attacks`), run in order as given: they are neither
        cloned nor given a threat model here. An attack with a
        ``members(model, X)`` method, such as :class:`AutoAttack`, is replaced by
        the attacks it returns, so that each member sees the points still robust
        (and fuller batches); its ``check_cascade(members, fooled_by)`` method, if
        any, is then called with the index among ``members`` of the member that
        fooled each point (other values: none of them did).
    model : callable
        Torch callable returning class scores; a module is evaluated in eval mode.
    X : tensor or ndarray of shape (n_samples, ...)
        Clean inputs.
    y : tensor or array-like of shape (n_samples,)
        True class indices.
    return_info : bool, default=False
        Also return a dict with per-sample tensors ``"clean_correct"`` and
        ``"fooled_by"`` (index in ``attacks`` of the attack that fooled the point,
        -1 where the point was misclassified from the start or never fooled),
        ``"fooled_by_step"`` (the same as an index in ``"steps"``), and
        ``"steps"``: one dict per step of the cascade (members of an ensemble are
        steps of their own) with ``"attack"`` (the step's attack), ``"owner"``
        (its index in ``attacks``), ``"name"`` (see :func:`attack_label`),
        ``"n_attacked"``, ``"n_fooled"``, ``"n_robust"`` (robust points after
        the step), ``"time_s"`` (wall time) and ``"n_forward"`` /
        ``"n_backward"`` (samples that went through the model's forward and
        backward passes during the step's attack; the cascade's own checks of the
        predictions are not counted). A step left with no point to attack has
        zeros.
    check_input : bool, default=True
        Check ``X`` and ``y`` (and the model's output on them) first, and let the
        attacks of this library validate the points they are given. ``False``
        skips that (for callers that validated ``X`` against the
        attacks' clip box already, as :class:`AutoAttack` does); other objects
        with a ``perturb`` method are always called without it.
    batch_size : int or None, default=None
        Each attack attacks the points still robust in batches of at most this
        many (refilled after every attack, as AutoAttack's own evaluation loop);
        None: all at once.
    device : torch.device or None, default=None
        Where the batches are attacked (``X`` may stay on the host); None: the
        device of ``X``.
    verbose : int, default=0
        If > 0, print the clean accuracy and, after each step, the robust
        accuracy and the step's time (as AutoAttack's log), with a progress bar
        over the batches of each step when tqdm is installed. A step whose
        ensemble has a ``verbose`` of its own above 0 is logged as well.

    Returns
    -------
    X_adv : tensor or ndarray
        Per sample, the adversarial example that fooled the model; the clean point
        where the model was already wrong; otherwise the last attack's attempt.
        Same type, shape and dtype as ``X`` (a NumPy array for NumPy input).
    robust : bool tensor or ndarray of shape (n_samples,)
        True where the point is classified correctly and no attack fooled it.
    info : dict
        Only when ``return_info=True``.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import APGD, PGD, cascade
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> attacks = [PGD(eps=0.1, random_state=0),
    ...            APGD(eps=0.1, n_iter=10, random_state=0)]
    >>> x_adv, robust, info = cascade(attacks, model, x, y, return_info=True)
    >>> robust.dtype
    torch.bool
    >>> [step["name"] for step in info["steps"]]
    ['pgd-10', 'apgd-ce']
    """
    if check_input:
        x, y, from_numpy = check_attack_input(model, X, y)
    else:
        from_numpy = not isinstance(X, torch.Tensor)
        x = torch.as_tensor(np.asarray(X), dtype=torch.float32) if from_numpy else X
        y = as_tensor(y, device=x.device).long()
    x = x.detach()
    for a in attacks:
        if not is_attack(a):
            raise TypeError(f"Every attack needs a perturb method; got {a!r}.")
    x_adv = x.clone()
    n = x.shape[0]
    step_by = torch.full((n,), -1, dtype=torch.long, device=x.device)
    device = x.device if device is None else torch.device(device)
    counter = _PassCounter(model)
    stats = []
    with eval_mode(model):
        robust = (predict_labels(model, x, device=device).to(x.device) == y
                  if n else y.bool())
        clean_correct = robust.clone()
        steps, owners, ensembles = _expand(attacks, model, x[:1].to(device),
                                           expand=n > 0)
        log = max([verbose] + [getattr(e, "verbose", 0) for e, _, _ in ensembles])
        log_line(log, f"clean accuracy: {_percent(robust, n)}")
        for i, attack in enumerate(steps):
            idx = robust.nonzero().squeeze(1)
            counter.n_forward = counter.n_backward = 0
            name, start = attack_label(attack), time.perf_counter()
            if idx.numel() == 0:  # nothing left to attack
                stats.append(dict(attack=attack, owner=owners[i], name=name,
                                  n_attacked=0, n_fooled=0, n_robust=0, time_s=0.0,
                                  n_forward=0, n_backward=0))
                continue
            batches = idx.split(int(batch_size or idx.numel()))
            for rows in progress_bar(batches, log, desc=name):
                xb, yb = x[rows].to(device), y[rows].to(device)
                if check_input or not isinstance(attack, BaseAttack):
                    adv = attack.perturb(counter, xb, yb)
                else:   # the data were checked; the model's outputs still are
                    with checking_logits():
                        adv = attack.perturb(counter, xb, yb, check_input=False)
                adv = as_tensor(adv, device=device, dtype=x.dtype)
                fooled = (predict_labels(model, adv) != yb).to(x.device)
                x_adv[rows] = adv.to(x.device)
                robust[rows[fooled]] = False
                step_by[rows[fooled]] = i
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            stats.append(dict(attack=attack, owner=owners[i], name=name,
                              n_attacked=int(idx.numel()),
                              n_fooled=int((step_by == i).sum()),
                              n_robust=int(robust.sum()), time_s=elapsed,
                              n_forward=counter.n_forward,
                              n_backward=counter.n_backward))
            log_line(log, f"robust accuracy after {name}: {_percent(robust, n)} "
                          f"({elapsed:.1f} s)")
    for ensemble, first, members in ensembles:
        check = getattr(ensemble, "check_cascade", None)
        if callable(check):
            check(members, step_by - first)
    # the attack of the given list that fooled each point (-1: the appended entry)
    fooled_by = torch.tensor([*owners, -1], device=x.device)[step_by]
    if from_numpy:
        x_adv, robust = x_adv.cpu().numpy(), robust.cpu().numpy()
    if return_info:
        return x_adv, robust, {"clean_correct": clean_correct, "fooled_by": fooled_by,
                               "fooled_by_step": step_by, "steps": stats}
    return x_adv, robust


def _percent(mask, n):
    return f"{float(mask.sum()) / n:.2%}" if n else "n/a"


def _expand(attacks, model, x_probe, expand=True):
    """The cascade's steps: the attacks, each one with members replaced by them.

    Also returns the index in ``attacks`` of each step, and ``(attack, first step,
    members)`` per expanded attack. All members are prepared before any step runs;
    ``expand=False`` (no points to attack) keeps the attacks as they are.
    """
    steps, owners, ensembles = [], [], []
    for i, attack in enumerate(attacks):
        if expand and callable(getattr(attack, "members", None)):
            members = list(attack.members(model, x_probe))
            ensembles.append((attack, len(steps), members))
        else:
            members = [attack]
        steps += members
        owners += [i] * len(members)
    return steps, owners, ensembles


class AutoAttack(BaseAttack):
    """Ensemble of diverse attacks evaluated as a worst-case cascade (AutoAttack).

    Runs its members in order, each on the points the previous ones did not fool,
    and returns per sample the first adversarial example found. This is the
    reliable robustness evaluation of Croce & Hein (2020): a white-box APGD on the
    cross-entropy, a targeted APGD on the scale-invariant DLR loss, and the
    black-box Square attack that gradient masking cannot stop.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball (given to every member).
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model (given to every member).
    version : {"standard", "plus", "rand", "fast"}, default="standard"
        Preset attack list (ignored when ``attacks`` is given):

        - ``"standard"``: APGD-CE (100 iterations), APGD-T (9 target classes x 100
          iterations), FAB-T (9 target classes x 100 iterations), Square (5000
          queries), in that order: AutoAttack's standard version (the one of
          RobustBench) for L-inf and L2. For L1, as the authors' L1 version
          (Croce & Hein, 2021): l1-APGD-CE with 5 restarts and l1-APGD-T with 5
          target classes, both with ``use_largereps=True``, then FAB-T and
          Square in their L1 versions.
        - ``"plus"``: APGD-CE and APGD-DLR with 5 restarts each, FAB with 5
          restarts, Square (5000 queries), APGD-T (9 targets), FAB-T (9 targets,
          1 restart): AutoAttack's plus version. It is designed for L-inf and L2;
          with L1 the same members run (as in the authors' code) and a
          ``UserWarning`` says so.
        - ``"rand"``: APGD-CE and APGD-DLR with 20 EOT gradient samples per
          iteration, for randomized models (any norm).
        - ``"fast"`` (this library's): APGD-CE (50 iterations), APGD-T (3 targets x
          50 iterations), Square (1000 queries), for model selection; for L1 the
          APGD members use ``use_largereps=True``.
    attacks : list of attacks or names, default=None
        Custom members, run in the given order; names are taken from
        :data:`ATTACK_NAMES` (``"apgd-ce"``, ``"apgd-dlr"``, ``"apgd-t"``,
        ``"fab"``, ``"fab-t"``, ``"square"``, ``"logit-scaled-pgd"``). Attack
        objects are cloned.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box (given to every member); ``None`` leaves a side open.
    random_state : int, RandomState instance or None, default=None
        Seeds the members that have no ``random_state`` of their own, through a
        local :class:`torch.Generator`.
    verbose : int, default=0
        If > 0, print the clean accuracy and the robust accuracy after each member
        with its time (AutoAttack's log), with a progress bar when tqdm is
        installed; also when the ensemble runs inside :func:`cascade` or a scorer.

    See Also
    --------
    cascade : The cascade as a function of an attack list.
    APGD, APGDT, Square : The members.

    Notes
    -----
    Threat model: untargeted, ``||x_adv - x|| <= eps`` in ``norm`` inside the clip
    box; the gradient members need a differentiable model returning logits. With
    fewer than 3 classes, members using the DLR loss use the Carlini-Wagner margin
    instead. A :class:`~sklearn_robust.exceptions.GradientMaskingWarning` is raised
    when Square fools points that the gradient-based members before it missed (as
    AutoAttack's ``check_square_sr``). With ``return_info=True`` the info dict
    holds ``"clean_correct"``,
    ``"robust"`` and ``"fooled_by"`` (index of the member that fooled the point,
    -1 if none did or the point was misclassified from the start).

    References
    ----------
    .. [1] F. Croce and M. Hein, "Reliable evaluation of adversarial robustness
       with an ensemble of diverse parameter-free attacks", ICML 2020,
       arXiv:2003.01690.
    .. [2] M. Andriushchenko, F. Croce, N. Flammarion and M. Hein, "Square Attack: a
       query-efficient black-box adversarial attack via random search", ECCV 2020,
       arXiv:1912.00049.
    .. [3] F. Croce and M. Hein, "Mind the box: l1-APGD for sparse adversarial
       attacks on image classifiers", ICML 2021, arXiv:2103.01208.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import APGD, AutoAttack, Square
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> attack = AutoAttack(eps=0.1, attacks=[APGD(n_iter=10), Square(n_queries=50)],
    ...                     random_state=0)
    >>> x_adv, info = attack.perturb(model, x, y, return_info=True)
    >>> sorted(info)
    ['clean_correct', 'fooled_by', 'robust']
    """

    _parameter_constraints = {**BaseAttack._parameter_constraints,
                              "verbose": [NON_NEGATIVE_INT]}

    def __init__(self, *, eps=0.3, norm="linf", version="standard", attacks=None,
                 clip_min=0.0, clip_max=1.0, random_state=None, verbose=0):
        self.eps = eps
        self.norm = norm
        self.version = version
        self.attacks = attacks
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self):
        super()._check_params()
        if self.attacks is None:
            if self.version not in AUTOATTACK_VERSIONS:
                raise ValueError(f"version must be one of {sorted(AUTOATTACK_VERSIONS)}"
                                 f", got {self.version!r}.")
            return
        if isinstance(self.attacks, (str, BaseAttack)) or not isinstance(
                self.attacks, (list, tuple)) or len(self.attacks) == 0:
            raise ValueError("attacks must be None or a non-empty list of attacks or "
                             f"names, got {self.attacks!r}.")
        for a in self.attacks:
            if isinstance(a, str):
                if a not in ATTACK_NAMES:
                    raise ValueError(f"Unknown attack name {a!r}; choose among "
                                     f"{list(ATTACK_NAMES)} or pass attack objects.")
            elif not isinstance(a, BaseAttack):
                raise TypeError(f"attacks must hold attacks of sklearn_robust.attacks "
                                f"or names, got {a!r}.")

    def _members(self):
        """Fresh member attacks carrying this ensemble's threat model."""
        if self.attacks is None:
            members = AUTOATTACK_VERSIONS[self.version](self.norm)
        else:
            named = _named_attacks()
            members = [named[a]() if isinstance(a, str) else clone(a)
                       for a in self.attacks]
        return [set_threat_model(m, eps=self.eps, norm=self.norm,
                                 clip_min=self.clip_min, clip_max=self.clip_max)
                for m in members]

    def members(self, model, X):
        """The member attacks, prepared to run on ``model`` as this ensemble runs them.

        :func:`cascade` runs an attack with this method as the cascade of these
        members over its whole data set (each member on the points still robust,
        in full batches), which is how :func:`~sklearn_robust.metrics.robust_correct`
        evaluates an ensemble.

        Parameters
        ----------
        model : callable
            The attacked torch callable, evaluated once on ``X[:1]`` (in eval
            mode) to count the classes.
        X : tensor of shape (n_samples, ...)
            Inputs on the device where the members will run.

        Returns
        -------
        members : list of attacks
            Fresh clones carrying this ensemble's threat model, in order. Members
            without a ``random_state`` are seeded from this ensemble's
            ``random_state`` (as :meth:`perturb` seeds them on a batch of
            ``X``'s device), and the DLR loss becomes the CW margin for fewer than
            3 classes.
        """
        self._check_params()
        generator = make_generator(self.random_state, X.device)
        with eval_mode(model):
            return self._prepared_members(model, X, generator)

    def _prepared_members(self, model, x, generator):
        """:meth:`members`, seeded from ``generator``."""
        members = self._members()
        with torch.no_grad():
            out = model(x[:1])
        n_classes = out.shape[1] if np.ndim(out) == 2 else 2
        for m in members:
            params = m.get_params()
            if "random_state" in params and params["random_state"] is None:
                # a seed in scikit-learn's range, as a user would give
                seed = torch.randint(0, 2 ** 32, (1,), generator=generator,
                                     device=generator.device)
                m.set_params(random_state=int(seed))
            if n_classes < 3 and params.get("loss") == "dlr":
                m.set_params(loss="cw")
        return members

    def _perturb(self, model, x, y, generator, return_info):
        members = self._prepared_members(model, x, generator)
        # x and y were validated against the members' threat model by perturb
        x_adv, robust, info = cascade(members, model, x, y, return_info=True,
                                      check_input=False, verbose=self.verbose)
        info = {"clean_correct": info["clean_correct"], "robust": robust,
                "fooled_by": info["fooled_by"]}
        self.check_cascade(members, info["fooled_by"])
        return x_adv, (info if return_info else {})

    @staticmethod
    def check_cascade(members, fooled_by):
        """Warn when Square fooled points that every earlier gradient member missed.

        Raises a :class:`~sklearn_robust.exceptions.GradientMaskingWarning`, as
        AutoAttack's ``check_square_sr``, for each :class:`Square` member that
        fooled points after a gradient-based member.

        Parameters
        ----------
        members : list of attacks
            The members as run, from :meth:`members`.
        fooled_by : tensor of shape (n_samples,)
            Per point, the index in ``members`` of the member that fooled it; any
            other value means that none did.
        """
        for i, m in enumerate(members):
            if not isinstance(m, Square) or not any(
                    not isinstance(prev, Square) for prev in members[:i]):
                continue
            n = int((fooled_by == i).sum())
            if n:
                warnings.warn(
                    f"The black-box Square attack fooled {n} point(s) that the "
                    "gradient-based attacks before it missed: the model may mask its "
                    "gradients, and robustness measured by gradient attacks alone "
                    "would be overstated.", GradientMaskingWarning, stacklevel=4)

    def _unchanged_info(self, correct, x, y):
        return {"clean_correct": correct, "robust": correct.clone(),
                "fooled_by": torch.full_like(y, -1)}

"""The result of a robustness evaluation, per sample and per attack."""

# SPDX-License-Identifier: BSD-3-Clause

from dataclasses import dataclass

import numpy as np

__all__ = ["RobustnessReport"]

_COLUMNS = ("attack", "robust_accuracy", "n_attacked", "n_fooled", "time_s",
            "forward_per_sample", "backward_per_sample", "n_forward", "n_backward")


@dataclass(repr=False, eq=False)
class RobustnessReport:
    """What :func:`robustness_report` measured: per sample and per attack.

    Attacks run as a worst-case cascade (each one on the points still robust),
    so each point is charged to the first attack that fooled it.

    Attributes
    ----------
    eps : float
        Radius of the threat model.
    norm : str
        Norm of the threat model.
    clip_min, clip_max : float or None
        The pixel box.
    clean_correct : ndarray of bool, shape (n_samples,)
        Where the clean prediction is right.
    robust : ndarray of bool, shape (n_samples,)
        Where the prediction is right under every attack.
    X_adv : ndarray, shape (n_samples, ...)
        Per sample, the adversarial example that fooled the model; the clean
        point where the model was wrong from the start; otherwise the last
        attack's attempt.
    fooled_by : ndarray of object, shape (n_samples,)
        Name of the attack that fooled each point (as in :attr:`attacks`); None
        where the point was misclassified from the start or never fooled.
    perturbation_norm : ndarray of float, shape (n_samples,)
        ``||X_adv - X||`` in the threat model's norm.
    attacks : list of dict
        One row per attack of the cascade (the members of an AutoAttack are
        rows of their own), in order: ``"attack"`` (its name; repeated names get
        ``"#2"``, ...), ``"robust_accuracy"`` (after it), ``"n_attacked"``,
        ``"n_fooled"``, ``"time_s"`` (wall time), ``"n_forward"`` and
        ``"n_backward"`` (samples through the model's forward and backward
        passes during the attack, counted as adv-lib counts them: a Jacobian of
        ``k`` rows counts ``k`` backward passes), and the same per attacked
        sample (``"forward_per_sample"``, ``"backward_per_sample"``).
    wall_time : float
        Seconds for the whole evaluation, clean predictions included.
    black_box : bool
        True when the estimator had no differentiable view and was attacked
        through its scores only (an upper bound on the robust accuracy).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_robust.attacks import PGD
    >>> from sklearn_robust.metrics import robustness_report
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(size=(40, 4)); y = (X[:, 0] > 0.5).astype(int)
    >>> clf = LogisticRegression().fit(X, y)
    >>> report = robustness_report(clf, X, y, eps=0.05, attack=PGD(n_steps=5))
    >>> [row["attack"] for row in report.attacks]
    ['pgd-5']
    >>> bool(report.robust_accuracy <= report.clean_accuracy)
    True
    """

    eps: float
    norm: str
    clip_min: object
    clip_max: object
    clean_correct: np.ndarray
    robust: np.ndarray
    X_adv: np.ndarray
    fooled_by: np.ndarray
    perturbation_norm: np.ndarray
    attacks: list
    wall_time: float
    black_box: bool = False

    @property
    def n_samples(self):
        """Number of evaluated points."""
        return len(self.robust)

    @property
    def clean_accuracy(self):
        """Fraction of points classified correctly without attack."""
        return float(np.mean(self.clean_correct))

    @property
    def robust_accuracy(self):
        """Fraction of points classified correctly under every attack."""
        return float(np.mean(self.robust))

    @property
    def forward_per_sample(self):
        """Forward passes of all attacks per evaluated point."""
        return sum(r["n_forward"] for r in self.attacks) / max(self.n_samples, 1)

    @property
    def backward_per_sample(self):
        """Backward passes of all attacks per evaluated point."""
        return sum(r["n_backward"] for r in self.attacks) / max(self.n_samples, 1)

    @classmethod
    def concatenate(cls, reports):
        """One report of several, on consecutive shards of the data (in order).

        The same attacks must have run on every shard: per-sample results are
        concatenated, per-attack counts and times summed (a time is then the
        attack's total over the shards, not the wall time of a parallel run).
        """
        reports = list(reports)
        if len(reports) == 1:
            return reports[0]
        first = reports[0]
        names = [r["attack"] for r in first.attacks]
        if any([r["attack"] for r in rep.attacks] != names for rep in reports):
            raise ValueError("The reports to concatenate ran different attacks.")
        n = sum(rep.n_samples for rep in reports)
        rows = []
        for j, name in enumerate(names):
            parts = [rep.attacks[j] for rep in reports]
            row = {key: sum(p[key] for p in parts)
                   for key in ("n_attacked", "n_fooled", "time_s", "n_forward",
                               "n_backward")}
            n_robust = sum(round(p["robust_accuracy"] * rep.n_samples)
                           for p, rep in zip(parts, reports))
            attacked = max(row["n_attacked"], 1)
            rows.append(dict(attack=name, robust_accuracy=n_robust / n, **row,
                             forward_per_sample=row["n_forward"] / attacked,
                             backward_per_sample=row["n_backward"] / attacked))

        def cat(attr):
            return np.concatenate([getattr(rep, attr) for rep in reports])

        return cls(eps=first.eps, norm=first.norm, clip_min=first.clip_min,
                   clip_max=first.clip_max, clean_correct=cat("clean_correct"),
                   robust=cat("robust"), X_adv=cat("X_adv"),
                   fooled_by=cat("fooled_by"),
                   perturbation_norm=cat("perturbation_norm"), attacks=rows,
                   wall_time=max(rep.wall_time for rep in reports),
                   black_box=any(rep.black_box for rep in reports))

    def to_frame(self, kind="attacks"):
        """The report as a :class:`pandas.DataFrame` (pandas needed).

        Parameters
        ----------
        kind : {"attacks", "samples"}, default="attacks"
            ``"attacks"``: one row per attack (the columns of :attr:`attacks`);
            ``"samples"``: one row per point (``clean_correct``, ``robust``,
            ``fooled_by``, ``perturbation_norm``).

        Returns
        -------
        frame : pandas.DataFrame
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RobustnessReport.to_frame needs pandas: "
                              "pip install pandas") from exc
        if kind == "attacks":
            return pd.DataFrame(self.attacks, columns=list(_COLUMNS))
        if kind == "samples":
            return pd.DataFrame({"clean_correct": self.clean_correct,
                                 "robust": self.robust, "fooled_by": self.fooled_by,
                                 "perturbation_norm": self.perturbation_norm})
        raise ValueError(f"kind must be 'attacks' or 'samples', got {kind!r}.")

    def __str__(self):
        box = f"[{self.clip_min}, {self.clip_max}]"
        head = (f"Robustness report: eps={self.eps:g} ({self.norm}), box {box}, "
                f"{self.n_samples} samples, {self.wall_time:.1f} s"
                + (", black-box (an upper bound)" if self.black_box else ""))
        header = ("attack", "robust acc", "attacked", "fooled", "time (s)",
                  "fwd/sample", "bwd/sample")
        rows = [("clean", f"{self.clean_accuracy:.4f}", "", "", "", "", "")]
        rows += [(r["attack"], f"{r['robust_accuracy']:.4f}", str(r["n_attacked"]),
                  str(r["n_fooled"]), f"{r['time_s']:.2f}",
                  f"{r['forward_per_sample']:.1f}", f"{r['backward_per_sample']:.1f}")
                 for r in self.attacks]
        widths = [max(len(row[j]) for row in [header, *rows])
                  for j in range(len(header))]
        lines = ["  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                           for j, (c, w) in enumerate(zip(row, widths)))
                 for row in [header, *rows]]
        return "\n".join([head, *lines])

    def __repr__(self):
        return (f"RobustnessReport(eps={self.eps!r}, norm={self.norm!r}, "
                f"n_samples={self.n_samples}, clean_accuracy="
                f"{self.clean_accuracy:.4f}, robust_accuracy="
                f"{self.robust_accuracy:.4f})")

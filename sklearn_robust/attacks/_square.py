"""Square Attack: score-based black-box random search (Andriushchenko et al., 2020)."""

# SPDX-License-Identifier: BSD-3-Clause

import math
import numbers
import warnings

import numpy as np
import torch

from ..exceptions import NotLogitsWarning
from ..utils._param_validation import POSITIVE_INT, Interval
from ._base import BaseAttack, _looks_like_probabilities
from ._projections import clip_to_box, flat_norm, project_feasible

__all__ = ["Square"]

# (last iteration, divisor of p_init) of the published schedule, for 10000 queries
_P_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32),
               (4000, 64), (6000, 128), (8000, 256))


def _p_selection(p_init, it, n_queries, rescale):
    """Fraction of the input changed at iteration ``it`` (piecewise constant)."""
    if rescale:
        it = int(it / n_queries * 10000)
    for last, divisor in _P_SCHEDULE:
        if it <= last:
            return p_init / divisor
    return p_init / 512


def _as_image(x):
    """View ``x`` as ``(n, c, h, w)``; flat inputs become signals ``(n, 1, 1, d)``."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, 1, x.shape[1])
    if x.ndim == 3:
        return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
    if x.ndim == 4:
        return x
    return x.reshape(x.shape[0], x.shape[1], x.shape[2], -1)


def _window(p, h, w, *, minimum=1, odd=False):
    """Window ``(sh, sw)`` covering about a fraction ``p`` of an ``h x w`` grid."""
    if h == 1 or w == 1:  # 1-D signal: an interval
        length = max(h, w)
        s = max(int(round(p * length)), minimum)
        if odd and s % 2 == 0:
            s += 1
        s = min(s, length)
        return (1, s) if h == 1 else (s, 1)
    s = max(int(round(math.sqrt(p * h * w))), minimum)
    if odd and s % 2 == 0:
        s += 1
    s = min(s, h, w)
    return s, s


#: Exponent of the ring weights ``1 / (k + 1)^power`` of the proposals, per norm
#: (the authors' ``eta_rectangles``).
_RING_POWER = {"l2": 2, "l1": 4}


def _rings(a, b, dtype, device, power=2):
    """Nested centred rectangles weighted ``1/(k+1)^power`` (block of a proposal)."""
    if a == 0 or b == 0:
        return torch.zeros(a, b, dtype=dtype, device=device)
    n_rings = max(a // 2 + 1, b // 2 + 1)
    weights = 1.0 / torch.arange(1, n_rings + 1, dtype=dtype, device=device) ** power
    tail = weights.flip(0).cumsum(0).flip(0)  # tail[d] = sum_{k >= d} weights[k]
    di = (torch.arange(a, device=device) - a // 2).abs()
    dj = (torch.arange(b, device=device) - b // 2).abs()
    return tail[torch.maximum(di[:, None], dj[None, :])]


def _window_norm(t, norm):
    """The ``norm`` (``"l2"`` or ``"l1"``) of ``t`` over its last two axes."""
    if norm == "l1":
        return t.abs().sum(dim=(-2, -1), keepdim=True)
    return t.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()


def _eta(sh, sw, dtype, device, norm="l2"):
    """Unit-norm proposal: positive rings on one half, negative on the other.

    As the authors' ``eta``: rings weighted ``1/(k+1)^2`` for L2 and ``1/(k+1)^4``
    for L1, each half normalised (in ``norm``) before the whole, so that the two
    halves have the same norm also when their sizes differ (odd windows).
    """
    power = _RING_POWER[norm]
    if sh == 1:
        half, dim = sw // 2, 1
        halves = (_rings(1, half, dtype, device, power),
                  _rings(1, sw - half, dtype, device, power))
    else:
        half, dim = sh // 2, 0
        halves = (_rings(half, sw, dtype, device, power),
                  _rings(sh - half, sw, dtype, device, power))
    first, second = (t / _window_norm(t, norm).clamp_min(1e-12) for t in halves)
    eta = torch.cat([first, -second], dim=dim)
    return eta / _window_norm(eta, norm)


def _channel_norms(t, norm="l2"):
    """Norms of ``t`` (n, c, h, w) over its spatial axes: ``(n, c, 1, 1)``."""
    return _window_norm(t, norm)


def _margin(scores, y):
    true = scores.gather(1, y[:, None]).squeeze(1)
    other = scores.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return true - other


def _positions(u, size, extent):
    """Window starts in ``[0, extent - size]`` from uniforms ``u`` in ``[0, 1)``."""
    return (u * (extent - size + 1)).long().clamp_max(extent - size)


def _window_mask(top, left, sh, sw, h, w):
    """Boolean mask ``(m, 1, h, w)`` of the per-sample windows at ``(top, left)``."""
    r = torch.arange(h, device=top.device)
    c = torch.arange(w, device=left.device)
    in_r = (r >= top[:, None]) & (r < top[:, None] + sh)
    in_c = (c >= left[:, None]) & (c < left[:, None] + sw)
    return (in_r[:, :, None] & in_c[:, None, :])[:, None]


def _signs(u, dtype):
    return torch.where(u < 0.5, -1.0, 1.0).to(dtype)


def _start(scores, x, y, x_init):
    """Score ``x_init``: the per-sample outputs, the start margins, the working set.

    The outputs are ``(x, margin, fooled, n_queries)`` per sample, initialised with
    the starting point (one query); the working set holds the indices of the
    samples not yet misclassified.
    """
    s = scores(x_init)
    margin, fooled = _margin(s, y), s.argmax(dim=1) != y
    out = (x_init.clone(), margin.clone(), fooled.clone(),
           torch.ones(x.shape[0], dtype=torch.long, device=x.device))
    return out, margin, (~fooled).nonzero().squeeze(1)


def _record(out, rows, x_rows, margin_rows, n_queries, *, fooled=False):
    """Write the points, margins and query counts of samples ``rows`` into ``out``."""
    out_x, out_margin, out_fooled, out_queries = out
    out_x[rows] = x_rows
    out_margin[rows] = margin_rows
    if fooled:
        out_fooled[rows] = True
    out_queries[rows] = n_queries


class Square(BaseAttack):
    """Square Attack: score-based black-box random search (Andriushchenko et al., 2020).

    Needs only the model's class scores: the model may be any callable returning a
    tensor or array of scores (logits, log-probabilities, probabilities or decision
    values), differentiable or not. At each iteration a random square (an interval
    for flat inputs) of the current perturbation is resampled and kept if it lowers
    the margin ``s_y - max_{j != y} s_j``; a sample stops as soon as it is
    misclassified.

    Parameters
    ----------
    eps : float, default=0.3
        Radius of the threat model's ball.
    norm : {"linf", "l2", "l1"}, default="linf"
        Norm of the threat model.
    n_queries : int, default=5000
        Model queries per sample and restart (the initial point counts as one).
    p_init : float, default=0.8
        Initial fraction of the input covered by the square; it decreases with the
        iterations following the published piecewise-constant schedule.
    n_restarts : int, default=1
        Number of runs from fresh random starts on the points not yet fooled.
    rescale_schedule : bool, default=True
        Stretch the schedule (designed for 10000 queries) to ``n_queries``, as in
        the authors' code. :class:`AutoAttack` uses ``False``, as AutoAttack does.
    clip_min, clip_max : float or None, default=0.0, 1.0
        Pixel box; ``None`` leaves a side open.
    random_state : int, RandomState instance or None, default=None
        Seeds all random draws through a local :class:`torch.Generator`.

    See Also
    --------
    AutoAttack : Uses Square as its black-box member.
    APGD : White-box counterpart.

    Notes
    -----
    Threat model: untargeted, black-box (scores only), ``||x_adv - x|| <= eps`` in
    ``norm`` and inside the clip box. Because it uses no gradient, Square is not
    fooled by gradient masking (zero, shattered or saturated gradients): if it beats
    the gradient attacks, their robustness estimate is not to be trusted.

    Inputs of shape ``(n, d)`` are treated as 1-D signals (windows are intervals of
    about ``p * d`` features), ``(n, h, w)`` as one-channel images, ``(n, c, h, w)``
    as images. L-inf: vertical-stripe initialisation, then windows set to ``+-eps``
    per channel. L2: the initialisation and proposals of the paper (nested squares of
    opposite signs), each proposal moving mass between two windows while keeping the
    norm at ``eps``: as in the authors' code, the budget of the new window is kept
    per channel (that channel's mass in the two windows plus a ``1 / c`` share of
    the unused budget), so the perturbation outside the windows is left unchanged.
    L1: the L1 version of the authors' code (used by AutoAttack's L1 version, Croce
    & Hein, 2021): the same search with rings weighted ``1/(k+1)^4`` normalised in
    L1, window budgets in L1 and, instead of the rescaling, the exact projection
    onto the intersection of the L1 ball and the clip box. As in that code, the new
    window of each channel gets ``c`` times its L2-style share (its channel's
    mass plus ``1 / c`` of the unused budget), so that on ``c > 1`` channels the
    projection soft-thresholds the whole perturbation, which makes it sparser; on
    one channel a proposal changes only its two windows. Windows are drawn per
    sample (the authors' code draws one per batch).

    Scores that look like probabilities (rows in ``[0, 1]`` summing to 1) are
    replaced by their logarithm, whose margin equals the logit margin of a softmax
    model, and a :class:`~sklearn_robust.exceptions.NotLogitsWarning` says so. A
    1-D output ``(n,)`` is read as a binary decision function (score of class 1).
    The model is only queried under :func:`torch.no_grad`. With ``return_info=True``
    the info dict holds ``"fooled"`` and ``"n_queries"`` (per sample, the queries
    spent, initial point included).

    References
    ----------
    .. [1] M. Andriushchenko, F. Croce, N. Flammarion and M. Hein, "Square Attack: a
       query-efficient black-box adversarial attack via random search", ECCV 2020,
       arXiv:1912.00049.
    .. [2] F. Croce and M. Hein, "Mind the box: l1-APGD for sparse adversarial
       attacks on image classifiers", ICML 2021, arXiv:2103.01208.

    Examples
    --------
    >>> import torch
    >>> from sklearn_robust.attacks import Square
    >>> model = torch.nn.Linear(4, 3)
    >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    >>> x_adv = Square(eps=0.1, n_queries=50, random_state=0).perturb(model, x, y)
    >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
    True
    """

    def __init__(self, *, eps=0.3, norm="linf", n_queries=5000, p_init=0.8,
                 n_restarts=1, rescale_schedule=True, clip_min=0.0, clip_max=1.0,
                 random_state=None):
        self.eps = eps
        self.norm = norm
        self.n_queries = n_queries
        self.p_init = p_init
        self.n_restarts = n_restarts
        self.rescale_schedule = rescale_schedule
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.random_state = random_state

    _parameter_constraints = {
        **BaseAttack._parameter_constraints,
        "n_queries": [POSITIVE_INT],
        "n_restarts": [POSITIVE_INT],
        "p_init": [Interval(numbers.Real, 0, 1, closed="right")],
        "rescale_schedule": ["boolean"],
    }

    # ----------------------------------------------------------------- scores
    def _scorer(self, model, shape):
        """A function ``x4 -> per-sample scores`` that decides the score kind once."""
        log_scores = None

        def scores(x4):
            nonlocal log_scores
            out = model(x4.reshape((x4.shape[0],) + shape))
            if not isinstance(out, torch.Tensor):
                out = torch.as_tensor(np.asarray(out), device=x4.device)
            out = out.detach()
            if not out.is_floating_point():
                out = out.double()
            if out.ndim == 1:  # binary decision function
                out = torch.stack([-out, out], dim=1)
            if log_scores is None:
                log_scores = _looks_like_probabilities(out)
                if log_scores:
                    warnings.warn(
                        "The model's outputs look like probabilities (in [0, 1], rows "
                        "summing to 1); Square uses their logarithm as scores, whose "
                        "margin equals the logit margin. Pass logits if you have them: "
                        "saturated probabilities give the search no signal.",
                        NotLogitsWarning, stacklevel=5)
            if log_scores:
                out = out.clamp_min(torch.finfo(out.dtype).tiny).log()
            return out

        return scores

    def _uniform(self, size, generator, x):
        return torch.rand(size, generator=generator, device=x.device)

    # ------------------------------------------------------------------- runs
    def _search(self, scores, x, y, x_init, propose):
        """Random search from ``x_init``; a sample leaves once misclassified.

        ``propose(i, xc, xb)`` returns the dense candidate batch of iteration ``i``
        (the L2 proposals, which rescale the whole perturbation).
        """
        out, margin, idx = _start(scores, x, y, x_init)
        xc, yc, xb, mb = x[idx], y[idx], x_init[idx], margin[idx]
        n_iter = 0
        for i in range(self.n_queries - 1):
            if idx.numel() == 0:
                break
            n_iter = i + 1
            x_new = propose(i, xc, xb)
            s = scores(x_new)
            new_margin, new_fooled = _margin(s, yc), s.argmax(dim=1) != yc
            better = (new_margin < mb) | new_fooled
            xb = torch.where(better[:, None, None, None], x_new, xb)
            mb = torch.where(better, new_margin, mb)
            if new_fooled.any():  # finished: write back, shrink the working set
                _record(out, idx[new_fooled], x_new[new_fooled], new_margin[new_fooled],
                        i + 2, fooled=True)
                keep = ~new_fooled
                idx, xc, yc, xb, mb = idx[keep], xc[keep], yc[keep], xb[keep], mb[keep]
        _record(out, idx, xb, mb, n_iter + 1)
        return out

    def _run_linf(self, scores, x, y, generator):
        """L-inf search; each candidate differs from the best point in one window.

        The candidate sets the window of every channel to one vertex of the ball,
        ``clip(x + eps)`` or ``clip(x - eps)``, so only the window's entries are
        written (flat indices into the batch) instead of building dense masks and
        candidates: the per-query cost beyond the model's forward pass does not
        grow with the input size.
        """
        n, c, h, w = x.shape
        eps = float(self.eps)
        lo, hi = self.clip_min, self.clip_max
        device = x.device
        # vertical stripes: one random sign per channel and column
        stripes = _signs(self._uniform((n, c, 1, w), generator, x), x.dtype)
        x_init = clip_to_box(x + eps * stripes, lo, hi)

        out, margin, idx = _start(scores, x, y, x_init)
        # working set: the samples not yet misclassified
        yc, mb = y[idx], margin[idx]
        y_col = yc[:, None]
        xb = x_init[idx].contiguous()  # best point so far
        query = xb.clone()  # equals xb outside the window being tried
        high = clip_to_box(x[idx] + eps, lo, hi).contiguous()
        low = clip_to_box(x[idx] - eps, lo, hi).contiguous()
        m = idx.numel()
        # flat index of entry (sample, channel, 0, 0) of the working set
        base = (torch.arange(m, device=device) * (c * h * w))[:, None, None, None] + (
            torch.arange(c, device=device) * (h * w))[None, :, None, None]
        strides = torch.tensor([w, 1], device=device)
        geometry = {}  # (sh, sw) -> window offsets, number and last of positions
        size = cells = None  # cells: flat indices of the windows at corner (0, 0)
        n_iter = 0
        for i in range(self.n_queries - 1):
            if m == 0:
                break
            n_iter = i + 1
            p = _p_selection(self.p_init, i, self.n_queries, self.rescale_schedule)
            new_size = _window(p, h, w)
            if new_size not in geometry:
                sh, sw = new_size
                offsets = (torch.arange(sh, device=device)[:, None] * w
                           + torch.arange(sw, device=device)[None, :])
                n_pos = torch.tensor([h - sh + 1, w - sw + 1], dtype=torch.float32,
                                     device=device)
                last = torch.tensor([h - sh, w - sw], device=device)
                geometry[new_size] = (offsets, n_pos, last)
            if new_size != size or cells is None or cells.shape[0] != m:
                size = new_size
                offsets, n_pos, last = geometry[size]
                cells = base[:m] + offsets
            u = self._uniform((m, 2 + c), generator, x)
            # window corner per sample (as _positions), then its flat indices
            if h == 1:  # 1-D signals: only the column varies
                start = torch.minimum((u[:, 1] * n_pos[1]).long(), last[1])
            else:
                start = (torch.minimum((u[:, :2] * n_pos).long(), last)
                         * strides).sum(dim=1)
            lin = cells + start[:, None, None, None]
            vals = torch.where((u[:, 2:] >= 0.5)[:, :, None, None], high.take(lin),
                               low.take(lin))
            old = xb.take(lin)
            query.put_(lin, vals)
            s = scores(query)
            true = s.gather(1, y_col).squeeze(1)
            new_margin = true - s.scatter(1, y_col, float("-inf")).amax(dim=1)
            new_fooled = s.argmax(dim=1) != yc
            better = (new_margin < mb) | new_fooled
            kept = torch.where(better[:, None, None, None], vals, old)
            xb.put_(lin, kept)
            query.put_(lin, kept)
            mb = torch.where(better, new_margin, mb)
            if new_fooled.any():  # finished: write back, shrink the working set
                _record(out, idx[new_fooled], xb[new_fooled], new_margin[new_fooled],
                        i + 2, fooled=True)
                keep = ~new_fooled
                idx, yc, mb, xb, high, low = (t[keep] for t in (idx, yc, mb, xb, high,
                                                               low))
                y_col = yc[:, None]
                query = xb.clone()
                m = idx.numel()
        _record(out, idx, xb, mb, n_iter + 1)
        return out

    def _run_lp(self, scores, x, y, generator):
        """L2 or L1 search: proposals moving mass between two windows.

        L2 rescales each candidate's perturbation to norm ``eps`` and clips it
        into the box; L1 projects it onto the intersection of the L1 ball and the
        box (as the authors' code).
        """
        n, c, h, w = x.shape
        eps = float(self.eps)
        norm = self.norm
        dtype, device = x.dtype, x.device

        def rescale(delta, center):
            if norm == "l1":  # onto the L1 ball and the box
                return center + project_feasible(center, delta, eps, "l1",
                                                 self.clip_min, self.clip_max)
            # to L2 norm eps, then into the box
            norms = flat_norm(delta, "l2").reshape(-1, 1, 1, 1)
            return clip_to_box(center + delta * (eps / (norms + 1e-12)),
                               self.clip_min, self.clip_max)

        def budget(norm_img, norm_windows):
            """The norm of each channel's new window (shape (m, c, 1, 1)): that
            channel's mass in the two windows plus a share of the unused budget
            (for L1, times c, as the authors' code: the projection then takes the
            excess from every coordinate)."""
            if norm == "l1":
                return ((eps - norm_img).clamp_min(0) / c + norm_windows) * c
            return ((eps ** 2 - norm_img ** 2).clamp_min(0) / c
                    + norm_windows ** 2).sqrt()

        # initialisation: a grid of tiles of the proposal pattern with random signs
        if h == 1:
            sh0, sw0 = 1, max(w // 5, 1)
        elif w == 1:
            sh0, sw0 = max(h // 5, 1), 1
        else:
            sh0 = sw0 = max(min(h, w) // 5, 1)
        tile = _eta(sh0, sw0, dtype, device, norm)
        nh, nw = h // sh0, w // sw0
        r0, c0 = (h - sh0 * nh) // 2, (w - sw0 * nw) // 2
        signs = _signs(self._uniform((n, c, nh, nw), generator, x), dtype)
        grid = (signs[:, :, :, None, :, None] * tile[:, None, :]).reshape(
            n, c, nh * sh0, nw * sw0)
        delta = torch.zeros_like(x)
        delta[:, :, r0:r0 + nh * sh0, c0:c0 + nw * sw0] = grid
        x_init = rescale(delta, x)
        patterns = {}

        def propose(i, xc, xb):
            m = xc.shape[0]
            p = _p_selection(self.p_init, i, self.n_queries, self.rescale_schedule)
            sh, sw = _window(p, h, w, minimum=3, odd=True)
            delta = xb - xc
            u = self._uniform((m, 5 + c), generator, x)
            top1, left1 = _positions(u[:, 0], sh, h), _positions(u[:, 1], sw, w)
            top2, left2 = _positions(u[:, 2], sh, h), _positions(u[:, 3], sw, w)
            mask1 = _window_mask(top1, left1, sh, sw, h, w)
            mask2 = _window_mask(top2, left2, sh, sw, h, w)
            rows = top1[:, None] + torch.arange(sh, device=device)
            cols = left1[:, None] + torch.arange(sw, device=device)
            at1 = (torch.arange(m, device=device)[:, None, None, None],
                   torch.arange(c, device=device)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :])
            window1 = delta[at1]  # (m, c, sh, sw)
            norm_w1 = _channel_norms(window1, norm)
            norm_img = flat_norm(delta, norm).reshape(-1, 1, 1, 1)
            # the mass of the two windows, per channel: each channel's new window
            # gets its own channel's mass back (plus a share of the unused budget)
            norm_windows = _channel_norms(delta * (mask1 | mask2), norm)
            # the pattern, randomly transposed per sample (square windows), signed
            if (sh, sw) not in patterns:
                patterns[sh, sw] = _eta(sh, sw, dtype, device, norm)
            pattern = patterns[sh, sw].expand(m, 1, sh, sw)
            if sh == sw and sh > 1:
                flip = (u[:, 4] < 0.5)[:, None, None, None]
                pattern = torch.where(flip, pattern.transpose(2, 3), pattern)
            new = pattern * _signs(u[:, 5:], dtype)[:, :, None, None]
            new = new + window1 / (norm_w1 + 1e-12)
            new = new / (_channel_norms(new, norm) + 1e-12)
            delta = delta * ~mask2
            delta[at1] = new * budget(norm_img, norm_windows)
            return rescale(delta, xc)

        return self._search(scores, x, y, x_init, propose)

    def _perturb(self, model, x, y, generator, return_info):
        shape = tuple(x.shape[1:])
        x4 = _as_image(x)
        scores = self._scorer(model, shape)
        run = self._run_linf if self.norm == "linf" else self._run_lp
        n = x.shape[0]
        x_out = x4.clone()
        margin = torch.full((n,), float("inf"), dtype=torch.float64, device=x.device)
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        n_queries = torch.zeros(n, dtype=torch.long, device=x.device)
        with torch.no_grad():
            for _ in range(self.n_restarts):
                idx = (~fooled).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                xb, mb, fb, qb = run(scores, x4[idx], y[idx], generator)
                better = fb | (mb.double() < margin[idx])
                x_out[idx[better]] = xb[better]
                margin[idx[better]] = mb.double()[better]
                fooled[idx[fb]] = True
                n_queries[idx] += qb
        x_adv = x_out.reshape(x.shape)
        info = {"fooled": fooled, "n_queries": n_queries} if return_info else {}
        return x_adv, info

    def _unchanged_info(self, correct, x, y):
        return {"fooled": ~correct, "n_queries": torch.zeros_like(y)}

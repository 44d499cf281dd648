"""Epoch time of every training method of the library against a hand-written loop.

For each method of ``--methods`` the library's classifier and a hand-written
PyTorch loop of the same algorithm train the same network (same initial
weights) on the same data, with the same batch size, optimizer, threat model and
K attack steps, so that both make the same forward and backward passes through
the network. The hand-written loops are the cost floor: data already on the
device as tensors, indexed by a random permutation, no checks and no
bookkeeping. The library side is ``partial_fit`` with ``max_epochs=1``,
``train_split=None``, ``verbose=0`` and the classifier's default callbacks
(``--epochs-per-call E``: ``max_epochs=E``, so that a call's fixed costs, input
validation and skorch's set-up, are paid once per E epochs as in a user's
``fit``; the hand loop then runs E epochs per timing and ART ``nb_epochs=E``).

Methods (per batch; K attack steps, ``f`` the network):

- ``pgd_at``: ``AdversarialClassifier``; K sign-gradient steps on the
  cross-entropy from a uniform start (eval mode), then cross-entropy on the
  adversarial batch (train mode);
- ``trades``: ``TRADESClassifier`` (beta 1); KL attack from ``x + 0.001 N(0, I)``
  (one clean forward without gradient, K steps), then ``CE(f(x)) + beta
  KL(f(x) || f(x_adv))`` with gradients through both forward passes;
- ``gairat``: ``GAIRATClassifier`` (lambda -1, reweighting from the first epoch):
  the PGD of ``pgd_at`` counting kappa, then the GAIR-weighted cross-entropy;
- ``gair_trades``: ``GAIRTRADESClassifier`` (beta 1, lambda -1, reweighting
  from the first epoch): the KL attack counting kappa, the clean and adversarial
  forward passes, a K-step CW-margin attack from ``x + 0.001 N(0, I)``, its
  forward pass, then the GAIR mixture of the two KL terms;
- ``dale``: ``LangevinAdvClassifier`` (Gaussian noise 1e-3, dual variable from
  1.0): K Langevin steps on ``log(1 - p_y)``, then ``CE(f(x_adv)) + nu CE(f(x))``
  and the dual update;
- ``lipschitz``: ``LipschitzDropoutClassifier(method="trades", beta=6)`` on the
  network built with dropout 0.2 (the TRADES loop with dropout active in train
  mode);
- ``fast_at``: ``FastAdversarialClassifier`` (FGSM-RS, step 1.25 eps) with its
  default catastrophic-overfitting check (PGD-5 of step eps/4 on the first batch
  of the epoch, one prediction and a copy of the weights at the end of each
  epoch).

With the Adversarial Robustness Toolbox installed (a benchmark-only dependency,
imported only here and only when used), ``pgd_at`` and ``trades`` also run ART's
``AdversarialTrainerMadryPGD`` and ``AdversarialTrainerTRADESPyTorch`` on a
``PyTorchClassifier`` of the same network (same initial weights, data, eps, step
size, K, batch size, optimizer; one epoch per timing); their differences from the
hand-written loops are listed in ``benchmarks/README.md``. ``--no-art`` leaves
them out.

After one untimed warm-up call per side (during which the forward and backward
passes through the network are counted), the sides of all methods alternate for
``--repeats`` calls, the order rotating at each repeat. Per method, the ratio of
the median epoch times (a call's time divided by E; library / hand-written, ART
/ hand-written) is compared with the target 1.05; the pass counts of the library
and of the hand-written loop must both equal the method's expected count
(``same_work``). With ``--profile`` (or when a method misses the target) one
library epoch of that method runs under cProfile and the top functions are
written next to the results.

Examples::

    python -m benchmarks.throughput --data digits --threads 1 --repeats 7
    python -m benchmarks.throughput --data mnist --data-path data/mnist.npz \\
        --n-train 2048 --threads 1 --repeats 3
    python -m benchmarks.throughput --methods pgd_at fast_at --no-art
    python -m benchmarks.throughput --data digits --threads 1 --repeats 7 \
        --epochs-per-call 5
"""

# SPDX-License-Identifier: BSD-3-Clause

import argparse
import copy
import cProfile
import io
import math
import os
import pstats
import statistics
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from sklearn_robust import (
    AdversarialClassifier,
    FastAdversarialClassifier,
    GAIRATClassifier,
    GAIRTRADESClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from sklearn_robust.nn import MLP, SmallCNN, default_module

from ._common import (
    RESULTS_DIR,
    Timer,
    add_data_arguments,
    add_runtime_arguments,
    load_data,
    markdown_table,
    result_stem,
    setup_runtime,
    synchronize,
    write_results,
)

TARGET = 1.05
DEFAULT_EPS = {"digits": 0.1, "mnist": 0.3, "fashion_mnist": 0.1}
DEFAULT_N_TRAIN = {"digits": None, "mnist": 2048, "fashion_mnist": 2048}
METHODS = ("pgd_at", "trades", "gairat", "gair_trades", "dale", "lipschitz",
           "fast_at")
#: ART's trainer run beside a method (on that method's hand-written loop)
ART_PEERS = {"pgd_at": "art_madry_pgd", "trades": "art_trades"}

# the methods' settings that are not the shared threat model
TRADES_BETA = 1.0
LIPSCHITZ_BETA = 6.0
LIPSCHITZ_DROPOUT = 0.2
GAIR_LAMBDA = -1.0
DALE = {"noise_scale": 1e-3, "margin": 0.1, "dual_step_size": 1e-3, "dual_init": 1.0}
FGSM_ALPHA_OVER_EPS = 1.25
CHECK_STEPS = 5          # PGD steps of the catastrophic-overfitting check
CHECK_THRESHOLD = 0.2


# --------------------------------------------------------- hand-written loops
# Plain PyTorch, L-inf threat model, pixel box [0, 1]. Each ``*_batch`` function
# returns the batch's training loss (its graph still to be back-propagated);
# ``hand_epoch`` does the permutation, zero_grad, backward and step.


def uniform_start(x, eps):
    """A uniform point of the eps-ball around ``x``, clipped into the box."""
    delta = (torch.rand_like(x) * 2 - 1) * eps
    return (x + delta).clamp(0.0, 1.0) - x


def normal_start(x, eps):
    """TRADES' start ``x + 0.001 N(0, I)``, projected into the ball and the box."""
    delta = (1e-3 * torch.randn_like(x)).clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0) - x


def sign_ascent(model, x, delta, objective, *, steps, alpha, eps, noise=0.0,
                count=None):
    """``steps`` projected sign-gradient steps on ``objective(model(x + delta))``.

    Each step takes the gradient of the summed per-sample objective with respect
    to ``delta`` only (``torch.autograd.grad``), adds ``alpha * sign(grad)`` (and
    ``noise * N(0, I)`` when ``noise``), projects onto the eps-ball and clips
    ``x + delta`` into the box. With ``count`` (labels) it also returns kappa, the
    number of iterates classified as ``count``.

    Returns
    -------
    x_adv : torch.Tensor
        The last iterate, detached.
    kappa : torch.Tensor or None
    """
    kappa = None if count is None else torch.zeros_like(count)
    for _ in range(steps):
        delta.requires_grad_(True)
        logits = model(x + delta)
        if count is not None:
            kappa += (logits.detach().argmax(dim=1) == count).long()
        (grad,) = torch.autograd.grad(objective(logits).sum(), delta)
        with torch.no_grad():
            step = alpha * grad.sign()
            if noise:
                step = step + noise * torch.randn_like(x)
            delta = (x + (delta + step).clamp(-eps, eps)).clamp(0.0, 1.0) - x
    return (x + delta).detach(), kappa


def kl_rows(logits_adv, logits_clean):
    """KL(softmax(clean) || softmax(adv)) of each row."""
    log_p = F.log_softmax(logits_clean, dim=1)
    return (log_p.exp() * (log_p - F.log_softmax(logits_adv, dim=1))).sum(dim=1)


def cw_margin(logits, y):
    """Best other logit minus the true logit, per row."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    return logits.scatter(1, y[:, None], float("-inf")).amax(dim=1) - true


def log_one_minus_p(logits, y):
    """``log(1 - softmax(logits)[y])`` per row, as logsumexp differences."""
    others = logits.scatter(1, y[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


def gair_weights(kappa, steps, lam):
    """GAIR's tanh weights ``(1 + tanh(lam + 5 (1 - 2 kappa / K))) / 2`` (float64)."""
    return torch.sigmoid(2.0 * (lam + 5.0 * (1.0 - 2.0 * kappa.double() / steps)))


def kl_attack(model, x, cfg, count=None):
    """TRADES' inner maximisation (eval mode): one clean forward, K KL steps."""
    with torch.no_grad():
        clean = model(x)
    return sign_ascent(model, x, normal_start(x, cfg["eps"]),
                       lambda logits: kl_rows(logits, clean), steps=cfg["steps"],
                       alpha=cfg["alpha"], eps=cfg["eps"], count=count)


def pgd_batch(model, x, y, cfg, state, *, steps=None, alpha=None):
    """PGD-AT: CE-PGD from a uniform start, CE on the adversarial batch."""
    model.eval()
    x_adv, _ = sign_ascent(model, x, uniform_start(x, cfg["eps"]),
                           lambda logits: F.cross_entropy(logits, y, reduction="none"),
                           steps=steps or cfg["steps"], alpha=alpha or cfg["alpha"],
                           eps=cfg["eps"])
    model.train()
    return F.cross_entropy(model(x_adv), y)


def fgsm_rs_batch(model, x, y, cfg, state):
    """FGSM-RS: the PGD-AT batch with one step of 1.25 eps."""
    return pgd_batch(model, x, y, cfg, state, steps=1,
                     alpha=FGSM_ALPHA_OVER_EPS * cfg["eps"])


def trades_batch(model, x, y, cfg, state, *, beta=TRADES_BETA):
    """TRADES: KL attack, then ``CE(f(x)) + beta * mean KL(f(x) || f(x_adv))``."""
    model.eval()
    x_adv, _ = kl_attack(model, x, cfg)
    model.train()
    logits = model(x)
    return F.cross_entropy(logits, y) + beta * kl_rows(model(x_adv), logits).mean()


def lipschitz_batch(model, x, y, cfg, state):
    """LipschitzDropoutClassifier(method="trades"): TRADES with beta 6."""
    return trades_batch(model, x, y, cfg, state, beta=LIPSCHITZ_BETA)


def gairat_batch(model, x, y, cfg, state):
    """GAIRAT: CE-PGD counting kappa, GAIR-weighted CE (weights sum to n)."""
    model.eval()
    x_adv, kappa = sign_ascent(
        model, x, uniform_start(x, cfg["eps"]),
        lambda logits: F.cross_entropy(logits, y, reduction="none"),
        steps=cfg["steps"], alpha=cfg["alpha"], eps=cfg["eps"], count=y)
    model.train()
    losses = F.cross_entropy(model(x_adv), y, reduction="none")
    w = gair_weights(kappa, cfg["steps"], GAIR_LAMBDA)
    w = w * (len(w) / w.sum())
    return (losses * w.to(losses.dtype)).mean()


def gair_trades_batch(model, x, y, cfg, state):
    """GAIR-TRADES: KL attack counting kappa, CW attack, GAIR mixture of KLs."""
    model.eval()
    x_adv, kappa = kl_attack(model, x, cfg, count=y)
    model.train()
    logits = model(x)
    logits_adv = model(x_adv)
    model.eval()
    x_cw, _ = sign_ascent(model, x, normal_start(x, cfg["eps"]),
                          lambda out: cw_margin(out, y), steps=cfg["steps"],
                          alpha=cfg["alpha"], eps=cfg["eps"])
    model.train()
    logits_cw = model(x_cw)
    w = gair_weights(kappa, cfg["steps"], GAIR_LAMBDA).to(logits.dtype)
    robust = w * kl_rows(logits_adv, logits) + (1 - w) * kl_rows(logits_cw, logits)
    return F.cross_entropy(logits, y) + TRADES_BETA * robust.mean()


def dale_batch(model, x, y, cfg, state):
    """DALE: Langevin steps on log(1 - p_y), primal loss, dual update."""
    model.eval()
    x_adv, _ = sign_ascent(model, x, normal_start(x, cfg["eps"]),
                           lambda logits: log_one_minus_p(logits, y),
                           steps=cfg["steps"], alpha=cfg["alpha"], eps=cfg["eps"],
                           noise=DALE["noise_scale"])
    model.train()
    nominal = F.cross_entropy(model(x), y)
    nu = state.setdefault("nu", DALE["dual_init"])
    loss = F.cross_entropy(model(x_adv), y) + nu * nominal
    # the dual step uses the clean loss before the primal step
    state["nu"] = max(0.0, nu + DALE["dual_step_size"]
                      * (float(nominal.detach()) - DALE["margin"]))
    return loss


def clone_state(obj):
    """A copy of a state dict with its tensors cloned (cheaper than deepcopy)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone_state(v) for v in obj]
    return obj  # numbers, strings, None, tuples of them


def overfitting_check(model, optimizer, x, y, cfg, state):
    """FGSM-RS' end-of-epoch check: PGD-5 accuracy of the first batch, with the
    weights and optimizer state kept (restored when the accuracy collapses)."""
    model.eval()
    x_adv, kappa = sign_ascent(
        model, x, uniform_start(x, cfg["eps"]),
        lambda logits: F.cross_entropy(logits, y, reduction="none"),
        steps=CHECK_STEPS, alpha=cfg["eps"] / 4, eps=cfg["eps"], count=y)
    with torch.no_grad():
        correct = model(x_adv).argmax(dim=1) == y
    acc = float((correct & (kappa == CHECK_STEPS)).float().mean())
    ref = state.get("reference")
    if ref is not None and acc - ref < -CHECK_THRESHOLD:
        model.load_state_dict(state["saved"][0])
        optimizer.load_state_dict(state["saved"][1])
    else:
        state["reference"] = acc
        state["saved"] = (clone_state(model.state_dict()),
                          clone_state(optimizer.state_dict()))
    model.train()


HAND_BATCH = {"pgd_at": pgd_batch, "trades": trades_batch, "gairat": gairat_batch,
              "gair_trades": gair_trades_batch, "dale": dale_batch,
              "lipschitz": lipschitz_batch, "fast_at": fgsm_rs_batch}
HAND_EPOCH_END = {"fast_at": overfitting_check}


def hand_epoch(method, model, optimizer, X, y, *, batch_size, cfg, state):
    """One epoch of ``method`` in plain PyTorch (the cost floor).

    Parameters
    ----------
    method : str
        A key of :data:`HAND_BATCH`.
    model : torch.nn.Module
        The network (trained in place).
    optimizer : torch.optim.Optimizer
        Its optimizer.
    X, y : torch.Tensor
        All training inputs and class codes, on the device.
    batch_size : int
        Mini-batch size.
    cfg : dict
        ``eps``, ``alpha`` (step size) and ``steps`` (K).
    state : dict
        What the method carries between batches and epochs (DALE's dual
        variable, the check's reference accuracy and saved weights).
    """
    batch_loss, epoch_end = HAND_BATCH[method], HAND_EPOCH_END.get(method)
    perm = torch.randperm(X.shape[0], device=X.device)
    first = None
    for start in range(0, X.shape[0], batch_size):
        idx = perm[start:start + batch_size]
        x, t = X[idx], y[idx]
        if first is None:
            first = (x, t)
        loss = batch_loss(model, x, t, cfg, state)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if epoch_end is not None:
        epoch_end(model, optimizer, *first, cfg, state)


def expected_passes(method, n, batch_size, steps):
    """``(forward, backward, samples)`` of one epoch through the network.

    ``samples`` counts the rows of every forward pass. ART's trainers are listed
    too: their PGD predicts the adversarial and the clean batch once more after
    each attack (its success-rate log), and TRADES attacks with CE-PGD, which
    needs no clean forward pass.
    """
    k = steps
    per_batch = {"pgd_at": (k + 1, k + 1), "gairat": (k + 1, k + 1),
                 "trades": (k + 3, k + 2), "lipschitz": (k + 3, k + 2),
                 "gair_trades": (2 * k + 4, 2 * k + 3), "dale": (k + 2, k + 2),
                 "fast_at": (2, 2), "art_madry_pgd": (k + 3, k + 1),
                 "art_trades": (k + 4, k + 2)}[method]
    n_batches = -(-n // batch_size)
    fwd, bwd = n_batches * per_batch[0], n_batches * per_batch[1]
    samples = n * per_batch[0]
    if method == "fast_at":
        first = min(batch_size, n)
        fwd, bwd, samples = (fwd + CHECK_STEPS + 1, bwd + CHECK_STEPS,
                             samples + first * (CHECK_STEPS + 1))
    return fwd, bwd, samples


# ----------------------------------------------------------------------- counting


class PassCounter:
    """Count forward and backward passes (and samples) through a module."""

    def __init__(self, module):
        self.forward = self.backward = self.samples = 0
        # the update step's input needs no gradient: torch warns that the hook
        # then fires on the output gradients, which is what is counted here
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        self._handles = [
            module.register_forward_pre_hook(self._on_forward),
            module.register_full_backward_pre_hook(self._on_backward),
        ]

    def _on_forward(self, module, args):
        self.forward += 1
        self.samples += int(args[0].shape[0])

    def _on_backward(self, module, grad_output):
        self.backward += 1

    def counts(self):
        """``(forward, backward, samples)``."""
        return self.forward, self.backward, self.samples

    def remove(self):
        for h in self._handles:
            h.remove()


# -------------------------------------------------------------------------- setup


def module_spec(name, input_shape, n_classes):
    """The module class and its keyword arguments (``auto``: the library default)."""
    if name == "auto":
        name = type(default_module(input_shape, n_classes)).__name__.lower()
    if name == "mlp":
        return MLP, {"hidden_layer_sizes": (256, 256)}
    if name == "smallcnn":
        return SmallCNN, {}
    raise SystemExit(f"unknown --module {name!r}")


def make_optimizer(name, params, lr):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def library_classifier(method, net, args, device, eps, alpha):
    """The library's classifier of ``method`` training the module instance ``net``."""
    common = dict(
        module=net, eps=eps, batch_size=args.batch_size,
        max_epochs=args.epochs_per_call, lr=args.lr,
        optimizer=torch.optim.Adam if args.optimizer == "adam" else torch.optim.SGD,
        **({} if args.optimizer == "adam" else {"optimizer__momentum": 0.9}),
        train_split=None, verbose=0, device=device, random_state=args.seed,
        iterator_train__shuffle=True)
    attack = dict(n_steps=args.steps, step_size=alpha)
    if method == "pgd_at":
        return AdversarialClassifier(random_start=True, **attack, **common)
    if method == "trades":
        return TRADESClassifier(beta=TRADES_BETA, **attack, **common)
    if method == "gairat":
        return GAIRATClassifier(gair_lambda=GAIR_LAMBDA, burn_in_epochs=0, **attack,
                                **common)
    if method == "gair_trades":
        return GAIRTRADESClassifier(beta=TRADES_BETA, gair_lambda=GAIR_LAMBDA,
                                    burn_in_epochs=0, **attack, **common)
    if method == "dale":
        return LangevinAdvClassifier(noise="gaussian", **DALE, **attack, **common)
    if method == "lipschitz":
        # the dropout is built into ``net`` (a module instance takes no dropout=)
        return LipschitzDropoutClassifier(method="trades", beta=LIPSCHITZ_BETA,
                                          **attack, **common)
    if method == "fast_at":
        return FastAdversarialClassifier(
            step_size=FGSM_ALPHA_OVER_EPS * eps, early_stop=True,
            early_stop_pgd_steps=CHECK_STEPS, early_stop_threshold=CHECK_THRESHOLD,
            **common)
    raise ValueError(method)


def import_art():
    """ART's classes, or None with a message when ART is not installed."""
    try:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.defences.trainer import (
            AdversarialTrainerMadryPGD,
            AdversarialTrainerTRADESPyTorch,
        )
        from art.estimators.classification import PyTorchClassifier
    except ImportError as exc:
        print(f"ART (adversarial-robustness-toolbox) is not importable ({exc}): its "
              "trainers are skipped. Install it for the benchmark only with "
              "`pip install --no-deps adversarial-robustness-toolbox six`.",
              flush=True)
        return None
    import art

    return {"version": art.__version__, "PGD": ProjectedGradientDescent,
            "Madry": AdversarialTrainerMadryPGD,
            "TRADES": AdversarialTrainerTRADESPyTorch,
            "PyTorchClassifier": PyTorchClassifier}


def art_epoch_function(peer, art, net, args, device, eps, alpha, X_np, y_np,
                       n_classes):
    """A callable running one epoch of ART's trainer ``peer`` on ``net``."""
    classifier = art["PyTorchClassifier"](
        model=net, loss=torch.nn.CrossEntropyLoss(),
        optimizer=make_optimizer(args.optimizer, net.parameters(), args.lr),
        input_shape=tuple(X_np.shape[1:]), nb_classes=n_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if str(device).startswith("cuda") else "cpu")
    if peer == "art_madry_pgd":
        trainer = art["Madry"](classifier, nb_epochs=args.epochs_per_call,
                               batch_size=args.batch_size,
                               eps=eps, eps_step=alpha, max_iter=args.steps,
                               num_random_init=1)
        # its PGD attacks in chunks of 32 by default: the whole training batch here
        trainer.attack.set_params(batch_size=args.batch_size)
        return lambda: trainer.fit(X_np, y_np)
    attack = art["PGD"](classifier, norm=np.inf, eps=eps, eps_step=alpha,
                        max_iter=args.steps, num_random_init=1,
                        batch_size=args.batch_size, verbose=False)
    trainer = art["TRADES"](classifier, attack, beta=TRADES_BETA)
    return lambda: trainer.fit(X_np, y_np, batch_size=args.batch_size,
                               nb_epochs=args.epochs_per_call)


def profile_epoch(run, device, top=25):
    """cProfile one epoch (``run()``); return the report text."""
    profiler = cProfile.Profile()
    synchronize(device)
    profiler.enable()
    run()
    synchronize(device)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def loader_epoch_seconds(clf, X, y, device):
    """Time to draw one epoch of batches from the library's skorch iterator."""
    from skorch.dataset import unpack_data
    from skorch.utils import to_tensor

    with Timer(device) as t:
        dataset = clf.get_dataset(X, y)
        for batch in clf.get_iterator(dataset, training=True):
            Xi, yi = unpack_data(batch)
            to_tensor(Xi, device=device), to_tensor(yi, device=device)
    return t.seconds


class Side:
    """One contender of a method: its epoch callable, pass counts and times."""

    def __init__(self, method, kind, label, run, module):
        self.method, self.kind, self.label = method, kind, label
        self.run, self.module = run, module
        self.times, self.counts = [], None
        self.dur = []     # skorch's own epoch timer (library sides)

    def warm_up_and_count(self, epochs=1):
        """Run the untimed warm-up call (``epochs`` epochs); keep the counts of
        one epoch (the call's, divided by ``epochs``)."""
        counter = PassCounter(self.module)
        try:
            self.run()
        finally:
            counter.remove()
        self.counts = tuple(c / epochs if c % epochs else c // epochs
                            for c in counter.counts())


# ---------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="training methods to compare with their hand loops")
    parser.add_argument("--no-art", action="store_true",
                        help="leave out ART's trainers (beside pgd_at and trades)")
    parser.add_argument("--module", choices=("auto", "mlp", "smallcnn"),
                        default="auto",
                        help="auto: MLP(256, 256) for digits, SmallCNN for 28x28")
    parser.add_argument("--steps", type=int, default=10, help="attack steps K")
    parser.add_argument("--eps", type=float, default=None,
                        help=f"L-inf radius (default: {DEFAULT_EPS})")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed calls per side (median taken)")
    parser.add_argument("--epochs-per-call", type=int, default=1, metavar="E",
                        help="epochs per timed call: the library's partial_fit "
                             "runs E epochs (max_epochs=E), the hand loop E "
                             "epochs, ART nb_epochs=E; times are per epoch")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="profile a library epoch of every method even when "
                             "the target is met")
    parser.add_argument("--no-profile", action="store_true",
                        help="never profile (not even a method that misses the "
                             "target)")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = setup_runtime(args)
    try:  # the load at the end is in the result files' header
        load_start = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load_start = None
    eps = DEFAULT_EPS[args.data] if args.eps is None else args.eps
    n_train = DEFAULT_N_TRAIN[args.data] if args.n_train is None else args.n_train
    alpha = 2.5 * eps / args.steps
    cfg = {"eps": eps, "alpha": alpha, "steps": args.steps}
    # only the training split is used (a token test subset is drawn)
    X_np, _, y_np, _, info = load_data(args.data, data_path=args.data_path,
                                       n_train=n_train, n_test=20, seed=args.seed)
    n, shape = len(y_np), tuple(X_np.shape[1:])
    n_classes = int(len(np.unique(y_np)))
    module_cls, module_kw = module_spec(args.module, shape, n_classes)
    X = torch.as_tensor(X_np, device=device)
    y = torch.as_tensor(y_np, device=device)
    n_batches = -(-n // args.batch_size)
    epc = args.epochs_per_call
    if epc < 1:
        raise SystemExit("--epochs-per-call must be at least 1")
    art = None if args.no_art else import_art()

    sides, classifiers = {}, {}
    for method in args.methods:
        kw = dict(module_kw)
        if method == "lipschitz":
            kw["dropout"] = LIPSCHITZ_DROPOUT
        torch.manual_seed(args.seed)
        net = module_cls(input_shape=shape, n_classes=n_classes, **kw).to(device)
        hand_net, art_net = copy.deepcopy(net), copy.deepcopy(net)
        clf = library_classifier(method, net, args, device, eps, alpha)
        classifiers[method] = clf
        optimizer = make_optimizer(args.optimizer, hand_net.parameters(), args.lr)
        state = {}

        def hand_run(method=method, model=hand_net, opt=optimizer, state=state):
            for _ in range(args.epochs_per_call):
                hand_epoch(method, model, opt, X, y, batch_size=args.batch_size,
                           cfg=cfg, state=state)

        def lib_run(clf=clf):
            clf.partial_fit(X_np, y_np)

        group = [Side(method, "hand", "hand-written PyTorch", hand_run, hand_net),
                 Side(method, "library", f"{type(clf).__name__}.partial_fit",
                      lib_run, net)]
        peer = ART_PEERS.get(method)
        if art is not None and peer is not None:
            run = art_epoch_function(peer, art, art_net, args, device, eps, alpha,
                                     X_np, y_np, n_classes)
            trainer = ("AdversarialTrainerMadryPGD" if peer == "art_madry_pgd"
                       else "AdversarialTrainerTRADESPyTorch")
            group.append(Side(peer, "art", f"ART {trainer}.fit", run, art_net))
        for side in group:  # the untimed warm-up call, counted
            side.warm_up_and_count(epc)
        sides[method] = group
        print(f"{method}: warm-up done; passes (forward, backward, samples) "
              + ", ".join(f"{s.kind} {s.counts}" for s in group), flush=True)

    for r in range(args.repeats):
        line = []
        for method, group in sides.items():
            k = r % len(group)
            for side in group[k:] + group[:k]:
                with Timer(device) as t:
                    side.run()
                side.times.append(t.seconds / epc)
                if side.kind == "library":
                    side.dur.append(statistics.fmean(
                        classifiers[method].history[-epc:, "dur"]))
            line.append(f"{method} " + " ".join(
                f"{s.kind} {s.times[-1]:.3f}s" for s in group))
        print(f"repeat {r + 1}/{args.repeats}: " + "; ".join(line), flush=True)
    first_lib = classifiers[args.methods[0]]
    loader_s = statistics.median(loader_epoch_seconds(first_lib, X_np, y_np, device)
                                 for _ in range(3))

    records, summary = [], []
    for method, group in sides.items():
        hand = group[0]
        hand_med = statistics.median(hand.times)
        expected = expected_passes(method, n, args.batch_size, args.steps)
        for side in group:
            med = statistics.median(side.times)
            records.append({
                "method": method, "side": side.label, "median_s": med,
                "min_s": min(side.times), "max_s": max(side.times),
                "ms_per_batch": 1e3 * med / n_batches, "samples_per_s": n / med,
                "forward_passes": side.counts[0], "backward_passes": side.counts[1],
                "samples_forwarded": side.counts[2]})
            if side.kind == "hand":
                continue
            ratio = med / hand_med
            row = {"method": method if side.kind == "library" else side.method,
                   "implementation": side.label, "vs": "hand-written " + method,
                   "ratio_median": ratio,
                   "ratio_paired_median": statistics.median(
                       a / b for a, b in zip(side.times, hand.times))}
            if side.kind == "library":
                row.update({
                    "ratio_skorch_dur": statistics.median(side.dur) / hand_med,
                    "target": TARGET, "pass": ratio <= TARGET,
                    "same_work": side.counts == hand.counts == expected})
            else:
                art_expected = expected_passes(side.method, n, args.batch_size,
                                               args.steps)
                row.update({"ratio_skorch_dur": math.nan, "target": math.nan,
                            "pass": None,
                            "same_work": side.counts == hand.counts,
                            "passes_as_expected": side.counts == art_expected})
            row.update({"forward_passes": side.counts[0],
                        "backward_passes": side.counts[1],
                        "hand_forward_passes": hand.counts[0],
                        "hand_backward_passes": hand.counts[1]})
            summary.append(row)

    settings = {
        "data": args.data, "n_train": info["n_train"],
        "input_shape": info["input_shape"],
        "module": module_cls.__name__, "module_kwargs": module_kw, "norm": "linf",
        "eps": eps, "steps": args.steps, "step_size": alpha,
        "batch_size": args.batch_size, "n_batches": n_batches,
        "optimizer": args.optimizer, "lr": args.lr, "repeats": args.repeats,
        "epochs_per_call": epc, "warm_up_epochs": epc, "seed": args.seed,
        "device": device,
        "torch_threads": torch.get_num_threads(), "methods": list(args.methods),
        "art": art["version"] if art else None,
        "method_settings": {
            "trades": {"beta": TRADES_BETA},
            "gairat": {"gair_lambda": GAIR_LAMBDA, "burn_in_epochs": 0},
            "gair_trades": {"beta": TRADES_BETA, "gair_lambda": GAIR_LAMBDA,
                            "burn_in_epochs": 0},
            "dale": {"noise": "gaussian", **DALE},
            "lipschitz": {"method": "trades", "beta": LIPSCHITZ_BETA,
                          "dropout": LIPSCHITZ_DROPOUT},
            "fast_at": {"step_size": FGSM_ALPHA_OVER_EPS * eps,
                        "check_steps": CHECK_STEPS,
                        "check_step_size": eps / 4}},
        "library_callbacks": {m: [name for name, _ in c.callbacks_]
                              for m, c in classifiers.items()},
        "loader_epoch_s": loader_s,
        "load_average_at_start": load_start,
    }
    missed = [row["method"] for row in summary if row["pass"] is False]
    notes = [
        f"ratio = median epoch of the implementation / median hand-written epoch "
        f"of the same method; target for the library <= {TARGET}: "
        + ("met by every method." if not missed else
           f"MISSED by {', '.join(missed)}."),
        "Library epoch = partial_fit(X, y) wall time"
        + (f" / {epc} (max_epochs={epc}: one call trains {epc} epochs)"
           if epc > 1 else "")
        + ": input validation, the library's training iterator, the attack, "
        "skorch's callbacks and bookkeeping. ratio_skorch_dur uses skorch's own "
        "epoch timer instead.",
        f"loader_epoch_s (settings): one epoch of the library's iterator alone "
        f"({loader_s:.2e} s, batches drawn and moved to {device}, no compute).",
        "same_work: the library's and the hand loop's forward, backward and "
        "sample counts per epoch of the warm-up call are equal (and equal to the "
        "method's "
        "expected count); for ART, whether its counts equal the hand loop's "
        "(passes_as_expected: ART's own expected count, see the README).",
    ]
    if art is not None and any(g[-1].kind == "art" for g in sides.values()):
        notes.append(
            f"ART {art['version']}: AdversarialTrainerMadryPGD (attack batch size "
            "set to the training batch size) is compared with the pgd_at hand loop, "
            "AdversarialTrainerTRADESPyTorch (with ART's CE-PGD attack, uniform "
            "start) with the trades hand loop (KL attack); ART's PGD predicts the "
            "adversarial and the clean batch after every attack (success-rate "
            "log), and its attack gradient is a full loss.backward().")
    print()
    print(markdown_table(records))
    print(markdown_table(summary))
    for note in notes:
        print("-", note)

    name = f"throughput_{args.data}_{module_cls.__name__.lower()}" + (
        f"_{epc}epochs-per-call" if epc > 1 else "")
    if not args.no_write:
        paths = write_results(
            name, records, settings, device=device, summary=summary,
            title=f"Throughput: training epochs of every method against a "
                  f"hand-written loop on {args.data} (K={args.steps})",
            notes=notes)
        print("wrote", *paths)
    for method in args.methods:
        if args.no_profile or not (args.profile or method in missed):
            continue
        report = profile_epoch(sides[method][1].run, device)
        print(f"profile of one {method} library epoch:\n{report[:4000]}")
        if not args.no_write:
            path = os.path.join(RESULTS_DIR, result_stem(name, device)
                                + f"_profile_{method}.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(report)
            print("wrote", path)
    return summary


if __name__ == "__main__":
    main()

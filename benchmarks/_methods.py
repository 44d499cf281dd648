"""The training methods the benchmarks compare, one line each, and their set-up.

``METHODS`` maps a name to a factory taking a :class:`Setup` and returning an
unfitted estimator; ``run_methods`` trains and evaluates them, ``scorer_strength``
attacks the models they give.
"""

# SPDX-License-Identifier: BSD-3-Clause

import dataclasses

import torch
from torch import nn

from sklearn_robust import (
    AdversarialClassifier,
    FastAdversarialClassifier,
    GAIRATClassifier,
    LangevinAdvClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from sklearn_robust.nn import MLP, SmallCNN, image_shape

# default threat model and training attack per data set (Madry et al. for MNIST)
DEFAULT_EPS = {"digits": 0.1, "mnist": 0.3, "fashion_mnist": 0.1}
DEFAULT_EPOCHS = {"digits": 30, "mnist": 10, "fashion_mnist": 10}
DEFAULT_ATTACK_STEPS = {"digits": 10, "mnist": 40, "fashion_mnist": 10}


class StridedCNN(nn.Module):
    """A cheap convolutional network for small images, for CPU benchmarks.

    ``conv3x3(c1, stride 2) - ReLU - conv3x3(c2, stride 2) - ReLU - linear``,
    padding 1, PyTorch's default initialisation; flat inputs are reshaped by
    :func:`~sklearn_robust.nn.image_shape`. On 3x32x32 inputs with the default
    ``channels=(16, 32)``: about 0.43 M multiply-adds a sample, 33 us a forward
    and 81 us a forward and backward pass per sample in batches of 100 on one CPU
    thread (SmallCNN: 620 us and 840 us).
    """

    def __init__(self, input_shape, n_classes, channels=(16, 32)):
        super().__init__()
        self.image_shape = image_shape(tuple(input_shape))
        c, h, w = self.image_shape
        c1, c2 = channels
        self.conv1 = nn.Conv2d(c, c1, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1)
        out_h, out_w = (h + 1) // 2, (w + 1) // 2
        out_h, out_w = (out_h + 1) // 2, (out_w + 1) // 2
        self.fc = nn.Linear(c2 * out_h * out_w, n_classes)

    def forward(self, x):
        h = torch.relu(self.conv1(x.reshape(len(x), *self.image_shape)))
        h = torch.relu(self.conv2(h))
        return self.fc(torch.flatten(h, 1))


@dataclasses.dataclass
class Setup:
    """What a method factory needs to build its estimator.

    ``module`` is ``"auto"`` (the library's default network for the input
    shape), ``"mlp"``, ``"smallcnn"`` or ``"strided_cnn"`` (:class:`StridedCNN`);
    ``input_shape`` is the shape of one sample (the "input kind"). ``options``
    carries method-specific settings such as TRADES' ``beta``.
    """

    eps: float
    seed: int
    epochs: int
    device: str = "cpu"
    module: str = "auto"
    input_shape: tuple = ()
    attack_steps: int = 10
    step_size: float = None
    batch_size: int = 128
    lr: float = 1e-3
    options: dict = dataclasses.field(default_factory=dict)

    def module_kwargs(self):
        if self.module == "auto":
            return {"module": None}
        if self.module == "mlp":
            return {"module": MLP, "module__hidden_layer_sizes": (256, 256)}
        if self.module == "smallcnn":
            return {"module": SmallCNN}
        if self.module == "strided_cnn":
            return {"module": StridedCNN}
        raise ValueError(f"unknown module {self.module!r}")

    def common(self, **overrides):
        """Keyword arguments shared by every method (the classifier's signature)."""
        kwargs = dict(eps=self.eps, n_steps=self.attack_steps,
                      step_size=self.step_size, max_epochs=self.epochs,
                      batch_size=self.batch_size, lr=self.lr,
                      random_state=self.seed, device=self.device,
                      train_split=None, verbose=0,
                      # explicit (skorch alone does not shuffle)
                      iterator_train__shuffle=True,
                      **self.module_kwargs())
        kwargs.update(overrides)
        return kwargs


# name -> factory(setup) -> unfitted estimator; one line per method
METHODS = {
    "natural": lambda s: AdversarialClassifier(**s.common(eps=0.0)),
    "pgd_at": lambda s: AdversarialClassifier(**s.common()),
    # Wong et al. 2020: FGSM-RS, one step of 1.25 eps (not --step-size), with the
    # catastrophic-overfitting check; optimiser and schedule as the others
    "fast_at": lambda s: FastAdversarialClassifier(
        **s.common(n_steps=1, step_size=None)),
    "trades": lambda s: TRADESClassifier(beta=s.options.get("trades_beta", 6.0),
                                         **s.common()),
    "gairat": lambda s: GAIRATClassifier(gair_lambda=-1.0, **s.common()),
    # DALE: Langevin sampler, MNIST step ratio of the paper (eta = eps / 3)
    "dale": lambda s: LangevinAdvClassifier(**s.common(step_size=s.eps / 3)),
    # Yang et al. 2020: each method with and without dropout, paper's attack steps
    **{f"lolip_{m}{'_drop' if d else ''}": (
        lambda s, m=m, d=d: LipschitzDropoutClassifier(
            method=m, dropout=0.5 if d else 0.0,
            **s.common(n_steps=None, step_size=None)))
       for m in ("trades", "at", "rst", "llr", "gr") for d in (False, True)},
}

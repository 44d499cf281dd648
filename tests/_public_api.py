"""One registry of the public entry points that take data, for the property suite.

Every public function of the library's public modules (``__all__``) is listed in
``FUNCTIONS`` with a small valid call; every public estimator and attack gets its
calls from ``INIT_PARAMS`` of ``test_common``. A call is a :class:`Call`: the
callable, its keyword arguments and the *role* of each argument that a user may
get wrong (features, labels, weights, logits, a real or integer parameter, the
clip box). ``test_api_properties`` corrupts one argument at a time according to its
role and checks the library's promise: a correct result or a ``ValueError`` /
``TypeError`` naming the argument, never another exception, a hang or NaN.

A public function without an entry (or listed as ``NOT_DATA``, for functions
that take no user data) fails ``test_registry_covers_every_public_function``, so
the suite grows with the API.
"""

import dataclasses
import inspect
from importlib import import_module

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

N, D, C = 24, 12, 3
_rng = np.random.RandomState(0)
X = _rng.rand(N, D).astype(np.float32)
Y = np.arange(N) % C
IMAGES = _rng.rand(N, 1, 6, 6).astype(np.float32)


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.ReLU(),
                               torch.nn.Linear(8, C))


MODEL = tiny_model()
LINEAR = LogisticRegression(max_iter=200).fit(X, Y)


@dataclasses.dataclass
class Call:
    """A valid call and the roles of the arguments to corrupt."""

    fn: object
    kwargs: dict
    roles: dict

    def __call__(self, **overrides):
        return self.fn(**{**self.kwargs, **overrides})


def _logits(n=N):
    return torch.tensor(_rng.randn(n, C), dtype=torch.float32)


def _pgd():
    from sklearn_robust.attacks import PGD

    return PGD(eps=0.1, n_steps=2)


def _functions():
    from sklearn_robust import attacks, classifiers, datasets, kernels, metrics

    K = kernels.fc_kernel(X.astype(np.float64))
    threat = {"eps": "real", "clip_min": "clip", "clip_max": "clip"}
    return {
        # attacks
        attacks.cw_loss: Call(attacks.cw_loss,
                              dict(logits=_logits(), y=torch.tensor(Y)),
                              dict(logits="logits", y="codes")),
        attacks.dlr_loss: Call(attacks.dlr_loss,
                               dict(logits=_logits(), y=torch.tensor(Y)),
                               dict(logits="logits", y="codes")),
        attacks.kl_loss: Call(attacks.kl_loss, dict(logits=_logits(), y=torch.tensor(Y),
                                                   clean_logits=_logits()),
                              dict(logits="logits", clean_logits="logits")),
        attacks.targeted_dlr_loss: Call(
            attacks.targeted_dlr_loss,
            dict(logits=_logits(), y=torch.tensor(Y), target=torch.tensor((Y + 1) % C)),
            dict(logits="logits", y="codes", target="codes")),
        attacks.cascade: Call(
            attacks.cascade, dict(attacks=[_pgd()], model=MODEL, X=torch.tensor(X),
                                  y=torch.tensor(Y), batch_size=8),
            dict(X="X", y="codes", batch_size="int", verbose="int0")),
        attacks.apgd_checkpoints: Call(attacks.apgd_checkpoints, dict(n_iter=20),
                                       dict(n_iter="int")),
        attacks.project_onto_hyperplane_box: Call(
            attacks.project_onto_hyperplane_box,
            dict(p=torch.tensor(X),
                 w=torch.tensor(_rng.randn(N, D), dtype=torch.float32),
                 c=torch.tensor(_rng.randn(N), dtype=torch.float32), norm="linf",
                 clip_min=0.0, clip_max=1.0),
            dict(p="X", w="X", clip_min="clip", clip_max="clip")),
        # classifiers
        classifiers.gair_weights: Call(
            classifiers.gair_weights, dict(kappa=Y.copy(), n_steps=3),
            dict(kappa="counts", n_steps="int", gair_lambda="lambda")),
        classifiers.dual_update: Call(
            classifiers.dual_update,
            dict(dual_variable=1.0, nominal_loss=0.5, margin=0.1, dual_step_size=0.1),
            dict(dual_variable="real", nominal_loss="anyreal", margin="anyreal",
                 dual_step_size="real")),
        # kernels
        kernels.fc_kernel: Call(kernels.fc_kernel, dict(X1=X, X2=X[:5], depth=2),
                                dict(X1="values", X2="values", depth="int0",
                                     W_std="real", b_std="real")),
        kernels.conv_kernel: Call(kernels.conv_kernel,
                                  dict(X1=IMAGES[:4], X2=IMAGES[:3], depth=1),
                                  dict(X1="images", X2="images", depth="int0",
                                       W_std="real", b_std="real")),
        kernels.solve_kernel_ridge: Call(
            kernels.solve_kernel_ridge,
            dict(K=K, Y=kernels.centered_one_hot(Y, C), ridge=1e-6),
            dict(K="square", Y="values", ridge="real")),
        kernels.centered_one_hot: Call(kernels.centered_one_hot,
                                       dict(codes=Y.copy(), n_classes=C),
                                       dict(codes="free_codes", n_classes="int")),
        # metrics
        metrics.robust_accuracy_score: Call(
            metrics.robust_accuracy_score,
            dict(estimator=LINEAR, X=X, y=Y, eps=0.1, attack="pgd",
                 sample_weight=np.ones(N)),
            dict(X="X", y="labels", sample_weight="weights", batch_size="int",
                 **threat)),
        metrics.robust_correct: Call(
            metrics.robust_correct, dict(estimator=LINEAR, X=X, y=Y, eps=0.1,
                                         attack="pgd"),
            dict(X="X", y="labels", batch_size="int", **threat)),
        metrics.robustness_report: Call(
            metrics.robustness_report, dict(estimator=LINEAR, X=X, y=Y, eps=0.1,
                                            attack="pgd"),
            dict(X="X", y="labels", batch_size="int", verbose="int0", **threat)),
        metrics.make_robust_scorer: Call(
            lambda X, y, sample_weight=None, **kw: metrics.make_robust_scorer(**kw)(
                LINEAR, X, y, sample_weight=sample_weight),
            dict(X=X, y=Y, eps=0.1, attack="pgd", sample_weight=np.ones(N)),
            dict(X="X", y="labels", sample_weight="weights", batch_size="int",
                 **threat)),
        metrics.gradient_masking_report: Call(
            metrics.gradient_masking_report,
            dict(estimator=LINEAR, X=X, y=Y, eps=0.1, n_samples=10, square_queries=10,
                 warn=False),
            dict(X="X", y="labels", n_samples="int", square_queries="int",
                 tolerance="real", **threat)),
        metrics.empirical_local_lipschitz: Call(
            metrics.empirical_local_lipschitz,
            dict(estimator=LINEAR, X=X, eps=0.1, n_steps=2),
            dict(X="X", n_steps="int", step_size="real", batch_size="int", **threat)),
        metrics.make_lipschitz_scorer: Call(
            lambda X, y, **kw: metrics.make_lipschitz_scorer(**kw)(LINEAR, X, y),
            dict(X=X, y=Y, eps=0.1, n_steps=2),
            dict(X="X", n_steps="int", step_size="real", **threat)),
        metrics.dataset_separation: Call(
            metrics.dataset_separation, dict(X=X, y=Y, X_test=X[:5], y_test=Y[:5]),
            dict(X="values", y="labels", X_test="values", y_test="labels")),
        # datasets
        datasets.make_robust_nonrobust_features: Call(
            datasets.make_robust_nonrobust_features,
            dict(n_samples=20, n_nonrobust=5, random_state=0),
            dict(n_samples="int", n_nonrobust="int", p="prob")),
    }


def _display_calls():
    from sklearn_robust.metrics import RobustnessCurveDisplay

    return {
        "RobustnessCurveDisplay.from_predictions": Call(
            RobustnessCurveDisplay.from_predictions,
            dict(eps=[0.0, 0.1], robust_accuracy=[0.9, 0.5]),
            dict(eps="radii", robust_accuracy="accuracies")),
    }


#: Public functions that take no user data (loaders read files and are tested
#: in tests/datasets; the others are constructors or predicates).
NOT_DATA = {"is_attack", "attack_label", "load_digits_images", "load_mnist",
            "load_fashion_mnist", "default_module", "image_shape", "get_torch_view",
            "get_score_view", "save_dataset", "load_dataset"}

PUBLIC_MODULES = ["sklearn_robust.attacks", "sklearn_robust.classifiers",
                  "sklearn_robust.datasets", "sklearn_robust.dataset_learning",
                  "sklearn_robust.kernels", "sklearn_robust.metrics",
                  "sklearn_robust.nn", "sklearn_robust.utils",
                  "sklearn_robust.callbacks"]


def public_functions():
    """Every public function of the public modules, as ``(name, function)``."""
    found = {}
    for name in PUBLIC_MODULES:
        module = import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isfunction(obj):
                found[attr] = obj
    return sorted(found.items())


def function_calls():
    """``{name: Call}`` for every registered function and display constructor."""
    calls = {fn.__name__: call for fn, call in _functions().items()}
    calls.update(_display_calls())
    return calls

import copy
import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.dataset import Dataset, ValidSplit
from skorch.helper import predefined_split

from sklearn_robust import (
    AdversarialClassifier,
    LipschitzDropoutClassifier,
    TRADESClassifier,
)
from sklearn_robust.attacks import PGD, LocalLinearityAttack
from sklearn_robust.attacks._losses import kl_loss
from sklearn_robust.callbacks import LocalLipschitzMonitor
from sklearn_robust.classifiers import LocalLipschitzMonitor as PublicMonitor
from sklearn_robust.classifiers._adversarial import adversarial_loss
from sklearn_robust.classifiers._lipschitz import (
    gr_objective,
    llr_objective,
    rst_objective,
)
from sklearn_robust.classifiers._trades import trades_loss
from sklearn_robust.metrics import dataset_separation, empirical_local_lipschitz
from sklearn_robust.nn import MLP, SmallCNN

FAST = dict(eps=0.1, n_steps=2, max_epochs=2, random_state=0)
METHODS = ["trades", "at", "rst", "llr", "gr"]


# ------------------------------------------------------------ hand-computed losses
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]])
B = np.array([0.1, -0.2])
X0 = np.array([[0.2, 0.4, 0.6], [0.9, 0.1, 0.3]])
XA = np.array([[0.25, 0.35, 0.7], [0.8, 0.2, 0.3]])
Y0 = np.array([1, 0])


def _linear():
    net = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor(W))
        net.bias.copy_(torch.tensor(B))
    return net


def _tensors():
    return torch.tensor(X0), torch.tensor(XA), torch.tensor(Y0)


def _net(**params):
    """An initialised classifier around the linear model (for its criterion)."""
    return LipschitzDropoutClassifier(module=_linear(), **params).initialize()


def _np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _np_ce(x, y):
    """Per-sample cross-entropy of the linear model and its input gradient."""
    logp = _np_log_softmax(x @ W.T + B)
    ce = -logp[np.arange(len(y)), y]
    grad = (np.exp(logp) - np.eye(2)[y]) @ W   # W^T (p - e_y), one row per sample
    return ce, grad


def test_trades_objective_by_hand():
    loss, logits = trades_loss(_net(), *_tensors(), beta=6.0)
    ce, _ = _np_ce(X0, Y0)
    lp, lq = _np_log_softmax(X0 @ W.T + B), _np_log_softmax(XA @ W.T + B)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=1)
    assert loss.item() == pytest.approx(ce.mean() + 6.0 * kl.mean(), rel=1e-12)
    np.testing.assert_allclose(logits.detach().numpy(), X0 @ W.T + B)


def test_at_and_rst_objectives_by_hand():
    ce, _ = _np_ce(X0, Y0)
    ce_adv, _ = _np_ce(XA, Y0)
    x, xa, y = _tensors()
    loss, logits = adversarial_loss(_net(), xa, y)
    assert loss.item() == pytest.approx(ce_adv.mean(), rel=1e-12)
    np.testing.assert_allclose(logits.detach().numpy(), XA @ W.T + B)
    loss, _ = rst_objective(_linear(), *_tensors(), reg_lambda=2.0)
    assert loss.item() == pytest.approx(ce.mean() + 2.0 * ce_adv.mean(), rel=1e-12)


def test_trades_and_at_losses_honour_the_criterion():
    x, xa, y = _tensors()
    margin = torch.nn.MultiMarginLoss()
    logits, logits_adv = _linear()(x), _linear()(xa)
    kl = kl_loss(logits_adv, y, logits).mean()
    loss, _ = trades_loss(_net(criterion=torch.nn.MultiMarginLoss), x, xa, y, beta=2.0)
    torch.testing.assert_close(loss, margin(logits, y) + 2.0 * kl)
    loss, _ = adversarial_loss(_net(criterion=torch.nn.MultiMarginLoss), xa, y)
    torch.testing.assert_close(loss, margin(logits_adv, y))
    # summed criterion: the natural term is summed, the KL term stays a mean
    loss, _ = trades_loss(_net(criterion__reduction="sum"), x, xa, y, beta=2.0)
    ce_sum = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
    torch.testing.assert_close(loss, ce_sum + 2.0 * kl)


def test_trades_and_at_methods_train_with_the_criterion(small_digits):
    X, _, y, _ = small_digits
    Xb, yb = torch.tensor(X[:32]), torch.tensor(y[:32])
    for method, cls in (("at", AdversarialClassifier), ("trades", TRADESClassifier)):
        params = dict(criterion=torch.nn.MultiMarginLoss, eps=0.1, n_steps=2,
                      step_size=0.1, max_epochs=1, random_state=0)
        if method == "trades":
            params["beta"] = 6.0
        ours = LipschitzDropoutClassifier(method=method, **params).fit(X, y)
        theirs = cls(**params).fit(X, y)
        theirs.module_.load_state_dict(ours.module_.state_dict())
        losses = []
        for clf in (ours, theirs):
            clf.attack_.set_params(random_state=5)
            losses.append(clf.robust_loss(Xb, yb)[0])
        torch.testing.assert_close(losses[0], losses[1])
        # and not the cross-entropy the method's paper uses
        ours.set_params(criterion=torch.nn.CrossEntropyLoss).initialize_criterion()
        ours.attack_.set_params(random_state=5)
        assert not torch.allclose(ours.robust_loss(Xb, yb)[0], losses[0])


def test_llr_objective_by_hand_and_trains_through_the_gradient():
    ce, grad = _np_ce(X0, Y0)
    ce_adv, _ = _np_ce(XA, Y0)
    linear = ((XA - X0) * grad).sum(axis=1)
    gap = ce_adv - ce - linear
    expected = ce.mean() + 4.0 * np.abs(gap).mean() + 3.0 * np.abs(linear).mean()
    loss, _ = llr_objective(_linear(), *_tensors(), reg_lambda=4.0, mu=3.0)
    assert loss.item() == pytest.approx(expected, rel=1e-12)

    # the regulariser depends on the weights through grad l (double backprop):
    # autograd's weight gradient must match finite differences of the loss
    x, xa, y = _tensors()

    def of_weight(weight):
        def module(z):
            return z @ weight.T + torch.tensor(B)
        return llr_objective(module, x, xa, y, reg_lambda=4.0, mu=3.0)[0]

    assert torch.autograd.gradcheck(of_weight, (torch.tensor(W, requires_grad=True),))


def test_gr_objective_by_hand():
    ce, grad = _np_ce(X0, Y0)
    v = grad / np.linalg.norm(grad, axis=1, keepdims=True)
    for h in (1.0, 0.1):
        ce_step, _ = _np_ce(X0 + h * v, Y0)
        expected = ce.mean() + 0.5 / 2 * (((ce_step - ce) / h) ** 2).mean()
        loss, _ = gr_objective(_linear(), torch.tensor(X0), None, torch.tensor(Y0),
                               reg_lambda=0.5, h=h)
        assert loss.item() == pytest.approx(expected, rel=1e-12)
    # small h: the penalty approaches ||grad l||^2 (the TULIP motivation)
    loss, _ = gr_objective(_linear(), torch.tensor(X0), None, torch.tensor(Y0),
                           reg_lambda=2.0, h=1e-6)
    norm2 = (grad ** 2).sum(axis=1).mean()
    assert loss.item() == pytest.approx(ce.mean() + norm2, rel=1e-5)


def test_llr_uses_one_dropout_mask_for_both_passes():
    torch.manual_seed(0)
    net = MLP(input_shape=(3,), n_classes=2, hidden_layer_sizes=(64,),
              dropout=0.5).double().train()
    x, _, y = _tensors()
    torch.manual_seed(1)
    clean = torch.nn.functional.cross_entropy(net(x), y)
    torch.manual_seed(1)
    # delta = 0: g(0) = l(x) - l(x) - 0 vanishes only if both passes share a mask
    loss, _ = llr_objective(net, x, x.clone(), y, reg_lambda=4.0, mu=3.0)
    torch.testing.assert_close(loss, clean, rtol=0, atol=1e-12)


def test_gr_penalty_small_with_shared_dropout_masks():
    torch.manual_seed(0)
    net = MLP(input_shape=(3,), n_classes=2, hidden_layer_sizes=(64,),
              dropout=0.5).double().train()
    x, _, y = _tensors()
    loss, logits = gr_objective(net, x, None, y, reg_lambda=1.0, h=1e-4)
    clean = torch.nn.functional.cross_entropy(logits, y)
    # with independent masks the finite difference would be O(1 / h) = O(1e4)
    assert (loss - clean).item() < 10.0


def test_trades_method_equals_trades_classifier_loss(small_digits):
    X, _, y, _ = small_digits
    ours = LipschitzDropoutClassifier(method="trades", beta=6.0, **FAST).fit(X, y)
    theirs = TRADESClassifier(beta=6.0, eps=0.1, n_steps=2, step_size=0.1,
                              max_epochs=1, random_state=0).fit(X, y)
    theirs.module_.load_state_dict(ours.module_.state_dict())
    assert ours.attack_.get_params() == {**theirs.attack_.get_params(),
                                         "random_state": ours.attack_.random_state}
    Xb, yb = torch.tensor(X[:32]), torch.tensor(y[:32])
    for clf in (ours, theirs):
        clf.attack_.set_params(random_state=5)
    torch.testing.assert_close(ours.robust_loss(Xb, yb)[0],
                               theirs.robust_loss(Xb, yb)[0])


def test_llr_attack_increases_the_gap_inside_the_ball():
    torch.manual_seed(0)
    net = MLP(input_shape=(10,), n_classes=3, hidden_layer_sizes=(32,)).double()
    x = torch.rand(16, 10, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    attack = LocalLinearityAttack(eps=0.3, n_steps=5, random_state=0)
    x_adv = attack.perturb(net, x, y)
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-9
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1

    def gap(z):
        xg = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(net(xg), y, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), xg)
        step = torch.nn.functional.cross_entropy(net(z), y, reduction="none")
        return (step - loss - ((z - x) * g).sum(1)).abs().detach()

    start = x + 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0),
                                   dtype=x.dtype)
    assert float(gap(x_adv).mean()) > 10 * float(gap(start.clamp(0, 1)).mean())


def test_attack_per_method(small_digits):
    X, _, y, _ = small_digits
    X, y = X[:64], y[:64]
    expected = {"trades": (PGD, 10, 0.02, "kl", "normal"),
                "at": (PGD, 10, 0.02, "ce", True),
                "rst": (PGD, 10, 0.02, "ce", True),
                "llr": (LocalLinearityAttack, 2, 0.05, None, None)}
    for method, (kind, steps, step, loss, start) in expected.items():
        clf = LipschitzDropoutClassifier(method=method, max_epochs=1,
                                         random_state=0).fit(X, y)
        attack = clf.attack_
        assert type(attack) is kind and attack.n_steps == steps
        assert attack.step_size == pytest.approx(step) and attack.eps == 0.1
        if loss is not None:
            assert attack.loss == loss and attack.random_start == start
    gr = LipschitzDropoutClassifier(method="gr", max_epochs=1, random_state=0).fit(X, y)
    assert gr.attack_ is None


# --------------------------------------------------------------------- dropout
def test_dropout_in_training_not_in_prediction(small_digits):
    X, X_test, y, _ = small_digits
    clf = LipschitzDropoutClassifier(method="at", dropout=0.3, **FAST).fit(X, y)
    drops = [m for m in clf.module_.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.3 for m in drops)
    np.testing.assert_array_equal(clf.predict_proba(X_test), clf.predict_proba(X_test))
    assert not clf.module_.training   # left in eval mode after predict
    x = torch.tensor(X_test[:20])
    clf.module_.train()
    assert not torch.equal(clf.module_(x), clf.module_(x))
    clf.module_.eval()
    assert torch.equal(clf.module_(x), clf.module_(x))


def test_dropout_reaches_default_cnn_and_module_classes(rng):
    X = rng.rand(12, 1, 28, 28).astype(np.float32)
    y = np.arange(12) % 2
    one = {**FAST, "max_epochs": 1}
    cnn = LipschitzDropoutClassifier(method="gr", dropout=0.1, **one)
    assert isinstance(cnn.fit(X, y).module_, SmallCNN) and cnn.module_.dropout == 0.1
    kept = LipschitzDropoutClassifier(method="gr", **one).fit(X, y)
    assert kept.module_.dropout == 0.5          # None keeps SmallCNN's own default
    flat = X.reshape(12, -1)[:, :64]
    mlp = LipschitzDropoutClassifier(module=MLP, dropout=0.25, method="gr",
                                     **one).fit(flat, y)
    assert mlp.module_.dropout == 0.25
    alt = LipschitzDropoutClassifier(module=MLP, module__dropout=0.4, method="gr",
                                     **one).fit(flat, y)
    assert alt.module_.dropout == 0.4
    plain = LipschitzDropoutClassifier(method="gr", **one)
    assert plain.fit(flat, y).module_.dropout == 0.0
    with pytest.raises(ValueError, match="not both"):
        LipschitzDropoutClassifier(module=MLP, module__dropout=0.4, dropout=0.2,
                                   **FAST).fit(flat, y)
    with pytest.raises(ValueError, match="cannot be passed"):
        LipschitzDropoutClassifier(module=MLP(input_shape=(64,), n_classes=2),
                                   dropout=0.2, **FAST).fit(flat, y)


# ---------------------------------------------------------- Lipschitz behaviour
def test_trades_is_locally_smoother_than_natural(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    natural = AdversarialClassifier(eps=0.0, max_epochs=15, random_state=0)
    natural.fit(X_train, y_train)
    trades = LipschitzDropoutClassifier(method="trades", beta=6.0, eps=0.1, n_steps=5,
                                        dropout=0.2, max_epochs=15, random_state=0)
    trades.fit(X_train, y_train)
    lip_nat = empirical_local_lipschitz(natural, X_test[:200], eps=0.1)
    lip_trades = empirical_local_lipschitz(trades, X_test[:200], eps=0.1)
    assert natural.score(X_test, y_test) > 0.9 and trades.score(X_test, y_test) > 0.85
    assert lip_trades < 0.5 * lip_nat, (lip_trades, lip_nat)


def test_history_records_lipschitz_and_gap(small_digits):
    X, X_test, y, y_test = small_digits
    clf = LipschitzDropoutClassifier(method="trades", lipschitz_eval_size=60,
                                     train_split=ValidSplit(4), **FAST)
    clf.fit(X, y)
    for row in clf.history:
        assert row["generalization_gap"] == row["train_acc"] - row["valid_acc"]
        assert 0 <= row["train_acc"] <= 1 and row["valid_local_lipschitz"] > 0
    assert clf.local_lipschitz_ == clf.history[-1, "valid_local_lipschitz"]
    # the monitor uses its own generators: training is unchanged
    plain = LipschitzDropoutClassifier(method="trades",
                                       train_split=ValidSplit(4), **FAST)
    plain.fit(X, y)
    for p, q in zip(clf.module_.parameters(), plain.module_.parameters()):
        assert torch.equal(p, q)
    assert "valid_local_lipschitz" not in plain.history[-1]
    assert not hasattr(plain, "local_lipschitz_")
    # a predefined test split, and no split at all
    split = predefined_split(Dataset(X_test, y_test))
    test = LipschitzDropoutClassifier(method="gr", lipschitz_eval_size=50,
                                      train_split=split, **FAST).fit(X, y)
    assert np.isfinite(test.history[-1, "generalization_gap"])
    alone = LipschitzDropoutClassifier(method="gr", lipschitz_eval_size=50, **FAST)
    row = alone.fit(X, y).history[-1]
    assert "train_local_lipschitz" in row and "generalization_gap" not in row
    assert alone.local_lipschitz_ == row["train_local_lipschitz"]
    # set_params reaches the callback; pickling keeps the value
    alone.set_params(callbacks__local_lipschitz__max_samples=20).fit(X, y)
    assert dict(alone.callbacks_)["local_lipschitz"].max_samples == 20
    assert pickle.loads(pickle.dumps(alone)).local_lipschitz_ == alone.local_lipschitz_
    alone.set_params(lipschitz_eval_size=None).fit(X, y)
    assert not hasattr(alone, "local_lipschitz_")       # no stale value


def test_monitor_callback_on_natural_baseline(small_digits):
    X, _, y, _ = small_digits
    natural = AdversarialClassifier(
        eps=0.0, max_epochs=2, random_state=0, train_split=ValidSplit(4),
        callbacks=[("lip", LocalLipschitzMonitor(eps=0.1, max_samples=50))])
    natural.fit(X, y)
    assert natural.local_lipschitz_ == natural.history[-1, "valid_local_lipschitz"]
    with pytest.raises(ValueError, match="eps > 0"):
        AdversarialClassifier(eps=0.0, max_epochs=1, callbacks=[
            LocalLipschitzMonitor(eps=0.0)]).fit(X, y)
    assert PublicMonitor is LocalLipschitzMonitor     # the old public path


# ----------------------------------------------------------- sklearn integration
def test_grid_search_and_clone_over_method(small_digits, check_grid_search):
    X, _, y, _ = small_digits
    search = GridSearchCV(LipschitzDropoutClassifier(dropout=0.1, **FAST),
                          {"method": METHODS}, cv=2)
    search.fit(X[:200], y[:200])
    check_grid_search(search, X[:200], y[:200])
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    clf = LipschitzDropoutClassifier(method="llr", llr_mu=1.0, dropout=0.1)
    twin = clone(clf)
    assert twin.get_params()["method"] == "llr" and twin.get_params()["llr_mu"] == 1.0
    assert twin.get_params()["dropout"] == 0.1


def test_methods_fit_and_are_reproducible(small_digits):
    X, X_test, y, _ = small_digits
    for method in METHODS:
        state = torch.get_rng_state()
        a = LipschitzDropoutClassifier(method=method, dropout=0.2, **FAST).fit(X, y)
        assert torch.equal(torch.get_rng_state(), state)   # global RNG untouched
        b = copy.deepcopy(clone(a)).fit(X, y)
        np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
        assert np.isfinite(a.history[-1, "train_loss"])


@pytest.mark.parametrize("params, error, match", [
    ({"method": "madry"}, ValueError, "method"),
    ({"method": None}, ValueError, "method"),
    ({"beta": -1.0}, ValueError, "beta"),
    ({"rst_lambda": "2"}, ValueError, "rst_lambda"),
    ({"llr_lambda": -1}, ValueError, "llr_lambda"),
    ({"llr_mu": np.nan}, ValueError, "llr_mu"),
    ({"gr_lambda": -0.5}, ValueError, "gr_lambda"),
    ({"gr_h": 0.0}, ValueError, "gr_h"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"dropout": -0.1}, ValueError, "dropout"),
    ({"lipschitz_eval_size": 0}, ValueError, "lipschitz_eval_size"),
    ({"lipschitz_eval_size": 10, "eps": 0.0}, ValueError, "eps > 0"),
    ({"n_steps": 0}, ValueError, "n_steps"),
    ({"step_size": 0.0}, ValueError, "step_size"),
    ({"eps": -0.1}, ValueError, "eps"),
    ({"attack": "pgd"}, TypeError, "attack"),
    ({"method": "gr", "attack": PGD()}, ValueError, "no attack"),
])
def test_bad_parameters(small_digits, params, error, match):
    X, _, y, _ = small_digits
    with pytest.raises(error, match=match):
        LipschitzDropoutClassifier(**{**FAST, **params}).fit(X[:50], y[:50])


# ------------------------------------------------------------------ separation
def _brute_force(X, y, Xt=None, yt=None, metric="chebyshev"):
    D = cdist(X, X, metric)
    D[y[:, None] == y[None, :]] = np.inf
    out = D.min(axis=1)
    if Xt is None:
        return out, None
    Dt = cdist(Xt, X, metric)
    Dt[yt[:, None] == y[None, :]] = np.inf
    return out, Dt.min(axis=1)


@pytest.mark.parametrize("n_features", [5, 200])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_separation_matches_brute_force(rng, n_features, norm):
    # quantised values create ties; block sizes are exercised by 200 features
    X = rng.randint(0, 6, size=(150, n_features)) / 5.0
    y = rng.randint(0, 4, size=150)
    Xt = rng.randint(0, 6, size=(40, n_features)) / 5.0
    yt = rng.randint(0, 4, size=40)
    metric = {"linf": "chebyshev", "l2": "euclidean", "l1": "cityblock"}[norm]
    train, test = _brute_force(X, y, Xt, yt, metric)
    sep = dataset_separation(X, y, norm=norm, X_test=Xt, y_test=yt)
    np.testing.assert_allclose(sep.train_nearest, train, rtol=1e-12)
    np.testing.assert_allclose(sep.test_nearest, test, rtol=1e-12)
    assert sep.separation == train.min() and sep.r == train.min() / 2
    assert sep.test_separation == test.min() and sep.norm == norm


def test_separation_of_digits_images_and_labels(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    flat = dataset_separation(X_train, y_train, X_test=X_test, y_test=y_test)
    images = dataset_separation(X_train.reshape(-1, 1, 8, 8),
                                np.array(list("abcdefghij"))[y_train])
    assert images.separation == flat.separation
    train, test = _brute_force(X_train, y_train, X_test, y_test)
    assert flat.separation == train.min() and flat.test_separation == test.min()
    assert flat.separation > 2 * 0.1      # digits are r-separated with r > eps = 0.1
    assert dataset_separation(X_train, y_train).test_nearest is None


def test_separation_duplicates_and_bad_input(rng):
    X = rng.rand(20, 3)
    y = np.arange(20) % 2
    dup = dataset_separation(np.vstack([X, X[:1]]), np.append(y, 1 - y[0]))
    assert dup.separation == 0.0 and dup.r == 0.0
    with pytest.raises(ValueError, match="norm"):
        dataset_separation(X, y, norm="l3")
    with pytest.raises(ValueError, match="one class"):
        dataset_separation(X, np.zeros(20))
    with pytest.raises(ValueError, match="together"):
        dataset_separation(X, y, X_test=X)
    with pytest.raises(ValueError, match="labels for"):
        dataset_separation(X, y[:-1])
    with pytest.raises(ValueError, match="features"):
        dataset_separation(X, y, X_test=X[:, :2], y_test=y)
    with pytest.raises(ValueError, match="NaN"):
        dataset_separation(np.where(X > 0.9, np.nan, X), y)
    with pytest.raises(ValueError, match="Unknown label type"):
        dataset_separation(X, y + 0.5)

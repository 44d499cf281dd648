"""
===========================================================
Natural versus adversarial training on the digits data set
===========================================================

Trains the same small network three ways on scikit-learn's digits (8x8 images,
pixels scaled to [0, 1]): naturally, with PGD adversarial training (Madry et al.,
2018) and with TRADES (Zhang et al., 2019). Each is scored on held-out digits for
clean accuracy and for robust accuracy under the library's strong default attack
(AutoAttack's standard ensemble, worst case per sample) at
``eps = 0.1`` in the L-infinity norm.

Run ``python examples/plot_digits_demo.py [--eps 0.1] [--epochs 30]``.
"""

# SPDX-License-Identifier: BSD-3-Clause

# %%
import argparse
import time

from sklearn.model_selection import train_test_split

from sklearn_robust import AdversarialClassifier, TRADESClassifier
from sklearn_robust.datasets import load_digits_images
from sklearn_robust.metrics import robust_accuracy_score


def main(eps=0.1, epochs=30, seed=0):
    X, y = load_digits_images(flat=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed)
    common = dict(max_epochs=epochs, random_state=seed, eps=eps, n_steps=10,
                  step_size=2.5 * eps / 10)
    models = {
        "natural": AdversarialClassifier(**{**common, "eps": 0.0}),
        "PGD-AT": AdversarialClassifier(**common),
        "TRADES (beta=6)": TRADESClassifier(beta=6.0, **common),
    }
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        clean = model.score(X_test, y_test)
        robust = robust_accuracy_score(model, X_test, y_test, eps=eps)
        rows.append((name, clean, robust, fit_s))

    print(f"digits, {len(X_train)} train / {len(X_test)} test, L-inf eps={eps}, "
          "strong default attack (AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square)")
    print(f"{'model':<18}{'clean acc':>10}{'robust acc':>12}{'fit (s)':>9}")
    for name, clean, robust, fit_s in rows:
        print(f"{name:<18}{clean:>10.3f}{robust:>12.3f}{fit_s:>9.1f}")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[1])
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.eps, args.epochs, args.seed)

"""
===========================================================
Natural versus adversarial training on the digits data set
===========================================================

Trains the same small network three ways on scikit-learn's digits (8x8 images,
pixels scaled to [0, 1]): naturally, with PGD adversarial training (Madry et al.,
2018) and with TRADES (Zhang et al., 2019). Each is scored on held-out digits for
clean accuracy and for robust accuracy under the library's strong default attack
(AutoAttack's standard ensemble, worst case per sample) at
``eps = 0.1`` in the L-infinity norm. The table is printed; with matplotlib
installed, a bar chart shows the same numbers.

Attack: the strong default of
:func:`~sklearn_robust.metrics.robust_accuracy_score` (``attack=None``, i.e.
``"strong"``), on all 540 test digits. It is the slowest example of the gallery
for that reason; the others use the cheaper ``"pgd"`` or ``"fast"`` presets.

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


def plot(rows, eps):
    """Clean and robust accuracy side by side; None without matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no figure; pip install matplotlib)")
        return None
    names = [r[0] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([i - 0.2 for i in x], [r[1] for r in rows], width=0.4, label="clean")
    ax.bar([i + 0.2 for i in x], [r[2] for r in rows], width=0.4,
           label=f"robust (AutoAttack, L-inf eps={eps})")
    for i, r in enumerate(rows):
        ax.annotate(f"{r[2]:.2f}", (i + 0.2, r[2]), ha="center", va="bottom")
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy on the test digits")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Natural versus adversarial training on the digits data set")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = main(args.eps, args.epochs, args.seed)
    fig = plot(rows, args.eps)
    if fig is not None:
        import matplotlib
        import matplotlib.pyplot as plt

        if "agg" not in matplotlib.get_backend().lower():  # an interactive window
            plt.show()

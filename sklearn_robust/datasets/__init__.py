# SPDX-License-Identifier: BSD-3-Clause
"""Datasets for robustness experiments, as float32 arrays scaled to [0, 1].

Nothing in this module downloads data: the digits ship with scikit-learn, and
MNIST / Fashion-MNIST are read from files the user already has.
"""

from ._loaders import load_digits_images, load_fashion_mnist, load_mnist
from ._synthetic import make_robust_nonrobust_features

__all__ = ["load_digits_images", "load_mnist", "load_fashion_mnist",
           "make_robust_nonrobust_features"]

"""Robust classifiers: skorch nets trained against attacks."""

# SPDX-License-Identifier: BSD-3-Clause

from ._adversarial import AdversarialClassifier
from ._base import BaseAdversarialClassifier
from ._trades import TRADESClassifier

__all__ = ["AdversarialClassifier", "BaseAdversarialClassifier", "TRADESClassifier"]

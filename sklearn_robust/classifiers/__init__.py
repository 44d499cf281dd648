"""Robust classifiers: skorch nets trained against attacks."""

# SPDX-License-Identifier: BSD-3-Clause

from ..callbacks import LocalLipschitzMonitor  # public here before callbacks existed
from ._accelerate import AccelerateMixin
from ._adversarial import AdversarialClassifier
from ._base import BaseAdversarialClassifier
from ._fast import FastAdversarialClassifier
from ._gairat import GAIRATClassifier, GAIRTRADESClassifier, gair_weights
from ._langevin import LangevinAdvClassifier, dual_update
from ._lipschitz import LipschitzDropoutClassifier
from ._trades import TRADESClassifier

__all__ = ["AdversarialClassifier", "BaseAdversarialClassifier", "TRADESClassifier",
           "FastAdversarialClassifier",
           "LangevinAdvClassifier", "GAIRATClassifier", "GAIRTRADESClassifier",
           "LipschitzDropoutClassifier", "LocalLipschitzMonitor", "gair_weights",
           "dual_update", "AccelerateMixin"]

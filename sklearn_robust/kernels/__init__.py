# SPDX-License-Identifier: BSD-3-Clause
"""Infinite-width neural network kernels (NNGP and NTK) in torch.

Closed-form kernels of infinitely wide ReLU networks, differentiable in both
arguments on any torch device, and a kernel-ridge-regression classifier that
uses them (white-box attackable through its torch view).
"""

from ._classifier import (
                          KernelRegressionModule,
                          NTKClassifier,
                          centered_one_hot,
                          solve_kernel_ridge,
)
from ._conv import ConvKernel, conv_kernel
from ._ntk import FCKernel, fc_kernel

__all__ = ["FCKernel", "ConvKernel", "fc_kernel", "conv_kernel", "NTKClassifier",
           "KernelRegressionModule", "solve_kernel_ridge", "centered_one_hot"]

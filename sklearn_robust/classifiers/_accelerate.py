"""Multi-GPU and multi-node training with Hugging Face Accelerate, robust loss kept."""

# SPDX-License-Identifier: BSD-3-Clause

import torch
from skorch.hf import AccelerateMixin as _SkorchAccelerateMixin

__all__ = ["AccelerateMixin"]


class AccelerateMixin(_SkorchAccelerateMixin):
    """Train any robust classifier of the library data-parallel with Accelerate.

    skorch's :class:`skorch.hf.AccelerateMixin` (its documented multi-GPU route)
    with the library's training step: each process attacks its shard of every
    batch with the classifier's training attack, on the network unwrapped from
    the data-parallel wrapper (an attack's input gradients never synchronise),
    and back-propagates the method's :meth:`robust_loss` with
    ``accelerator.backward`` under ``accelerator.autocast()``, so mixed precision
    and gradient accumulation work as in skorch. Combine it with a classifier
    as skorch documents::

        from accelerate import Accelerator
        from sklearn_robust import TRADESClassifier
        from sklearn_robust.classifiers import AccelerateMixin

        class AcceleratedTRADES(AccelerateMixin, TRADESClassifier):
            pass

        clf = AcceleratedTRADES(accelerator=Accelerator(), device=None, eps=0.3)

    and launch the script with ``accelerate launch script.py`` (one process per
    GPU, on one or several machines). Pass ``device=None``: Accelerate places the
    network and the batches. Seeds work as in the plain classifier (the forked
    RNG covers the CPU generator and the current CUDA device's); on one process
    and the CPU the trained weights equal the plain classifier's for the same
    ``random_state``. skorch's own mixin, which trains skorch's plain loss, is
    refused with a ``TypeError``.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        The accelerator (its device placement, mixed precision and gradient
        accumulation settings).
    device : None, default=None
        Must be None when the accelerator places devices.
    unwrap_after_train : bool, default=True
        Unwrap the network after training, so the fitted classifier predicts,
        pickles and is scored like a plain one.
    **kwargs
        The classifier's parameters.

    References
    ----------
    .. [1] S. Gugger et al., "Accelerate: Training and inference at scale made
       simple, efficient and adaptable", 2022,
       https://github.com/huggingface/accelerate.
    """

    # a DataLoader, which Accelerate shards over the processes
    _slice_batches = False

    def _initialize_callbacks(self):
        # skorch's mixin prints the epoch log with accelerator.print whatever
        # ``verbose`` says; keep the classifiers' rule (silent at verbose=0)
        if self.callbacks__print_log__sink == "auto":
            self.callbacks__print_log__sink = _VerbosePrint(self)
        return super()._initialize_callbacks()

    def _initialize_accelerator(self):
        """skorch's preparation, except for criteria without trainable parameters
        (a cross-entropy): wrapping those in ``DistributedDataParallel`` fails on
        more than one process; they are only moved to the accelerator's device."""
        if self._wrapped_with_accelerator:
            return self
        plain = {}
        for name in self._criteria:
            criterion = getattr(self, name + "_")
            if isinstance(criterion, torch.nn.Module) and not any(
                    p.requires_grad for p in criterion.parameters()):
                plain[name] = criterion.to(self.accelerator.device)
                setattr(self, name + "_", None)
        try:
            super()._initialize_accelerator()
        finally:
            for name, criterion in plain.items():
                setattr(self, name + "_", criterion)
        return self

    def initialize(self):
        """The classifier's own initialisation (e.g. DALE's dual variable), then
        the accelerator's preparation of the network, criterion and optimizer."""
        if self.precision != "fp32":
            raise ValueError(
                f"{type(self).__name__}: with Accelerate, set the precision on the "
                f"accelerator (Accelerator(mixed_precision='{self.precision}')), not "
                f"precision={self.precision!r}.")
        super(_SkorchAccelerateMixin, self).initialize()
        self._initialize_accelerator()
        return self

    def train_step_single(self, batch, **fit_params):
        """The classifier's robust training step under ``accelerator.autocast``."""
        with self.accelerator.autocast():
            return super(_SkorchAccelerateMixin, self).train_step_single(
                batch, **fit_params)

    def backward(self, loss):
        """``accelerator.backward(loss)`` (loss scaling, gradient accumulation)."""
        self.accelerator.backward(loss)

    @property
    def attacked_module_(self):
        """``module_`` unwrapped from Accelerate's data-parallel wrapper."""
        if getattr(self, "_wrapped_with_accelerator", False):
            return self.accelerator.unwrap_model(self.module_,
                                                 keep_fp32_wrapper=False)
        return self.module_


class _VerbosePrint:
    """``accelerator.print`` (the main process prints) when ``net.verbose`` > 0."""

    def __init__(self, net):
        self.net = net

    def __call__(self, *args, **kwargs):
        if self.net.verbose:
            self.net.accelerator.print(*args, **kwargs)

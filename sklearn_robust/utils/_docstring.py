"""Shared docstring fragments (the threat model, fitted attributes)."""

# SPDX-License-Identifier: BSD-3-Clause

import re
import textwrap

__all__ = ["Substitution", "FRAGMENTS"]

_PLACEHOLDER = re.compile(r"(\s*)%\((\w+)\)s")


class Substitution:
    """Decorator that fills placeholder lines of a docstring with fragments.

    A line that holds only ``%(name)s`` (after its indentation) is replaced by
    the fragment ``name``, every line indented like the placeholder, so one
    description of, e.g., the threat-model parameters serves every estimator.
    Like imbalanced-learn's decorator of the same name, with whole-line
    placeholders so that the braces of numpydoc types need no escaping.

    Parameters
    ----------
    **fragments : str
        Fragment texts (dedented); unknown placeholders raise ``KeyError`` at
        import time.
    """

    def __init__(self, **fragments):
        self.fragments = {name: textwrap.dedent(text).strip("\n")
                          for name, text in fragments.items()}

    def __call__(self, obj):
        if obj.__doc__ is None:                 # python -OO strips docstrings
            return obj
        lines = []
        for line in obj.__doc__.split("\n"):
            match = _PLACEHOLDER.fullmatch(line)
            if match is None:
                lines.append(line)
                continue
            indent, name = match.groups()
            indent = indent.lstrip("\n")
            lines.extend(indent + part if part else part
                         for part in self.fragments[name].split("\n"))
        obj.__doc__ = "\n".join(lines)
        return obj


FRAGMENTS = {
    "norm": '''
        norm : {"linf", "l2", "l1"}, default="linf"
            Norm of the threat model.''',
    "clip_box": '''
        clip_min, clip_max : float or None, default=0.0, 1.0
            Pixel box of the threat model: inputs outside it are rejected and
            perturbed inputs stay inside it; ``None`` leaves a side open (e.g.
            standardised features).''',
    "preprocessor": '''
        preprocessor : transformer or None, default=None
            Preprocessing inside the model, so that ``eps`` and the clip box are
            measured on the raw inputs in training and in scoring alike: an
            unfitted scikit-learn transformer with an exact torch equivalent
            (``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``, ``PCA``, a
            pipeline, ``FeatureUnion`` or ``ColumnTransformer`` of them), fitted
            on the training inputs as ``preprocessor_`` and run as the fixed first
            layer of ``module_``. Putting the scaler in a ``Pipeline`` before the
            classifier instead would train with the attack in scaled units while
            the scorers attack the pipeline's raw inputs.''',
    "precision": '''
        precision : {"fp32", "bf16", "fp16"}, default="fp32"
            Numeric precision of training, attack included: float32, or
            :func:`torch.autocast` to bfloat16 or float16 (matrix products and
            convolutions in the lower precision, losses in float32; float16 adds
            a gradient scaler, ``grad_scaler_``). Predictions stay in float32;
            the scorers take a ``precision`` of their own. Check the robust
            accuracy of a lower precision beside its time
            (``benchmarks/precision.py``).''',
    "channels_last": '''
        channels_last : bool, default=False
            Keep the network's 4-D weights and its image inputs in the
            channels-last (NHWC) memory layout, which convolutions may run
            faster in (tensor cores on GPUs, oneDNN on CPUs); the values are
            unchanged. Measure it with ``benchmarks/precision.py``
            (``--train-precisions fp32 fp32+channels_last``). skorch's
            ``compile=True`` (one of the ``**kwargs``) compiles the network with
            :func:`torch.compile`, and the step of the PGD training attacks
            (``PGD(compile=True)``) with it.''',
    "device": '''
        device : str or torch.device, default="cpu"
            Device of the computation.''',
    "verbose": '''
        verbose : int, default=0
            If > 0, show a tqdm progress bar (when tqdm is installed); nothing
            is printed otherwise.''',
    "net_attributes": '''
        module_ : torch.nn.Module
            The trained network.
        attack_ : attack
            The training attack.''',
    "data_attributes": '''
        classes_ : ndarray of shape (n_classes,)
            Class labels.
        input_shape_ : tuple
            Shape of one training sample.
        n_features_in_ : int
            Size of the second dimension of ``X``.''',
}

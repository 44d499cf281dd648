"""The one door to scikit-learn's private API.

Every name the library uses from a private scikit-learn module (or a private
function of a public one) is imported here and nowhere else, so a scikit-learn
upgrade that moves or changes them touches this file only.
``tests/utils/test_param_validation.py`` fails if another module of the package
imports scikit-learn's private API.
"""

# SPDX-License-Identifier: BSD-3-Clause

from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import (
                                             HasMethods,
                                             Hidden,
                                             Interval,
                                             InvalidParameterError,
                                             Options,
                                             RealNotInt,
                                             StrOptions,
                                             make_constraint,
)
from sklearn.utils._param_validation import _Constraint as Constraint
from sklearn.utils.validation import _check_sample_weight as check_sample_weight

__all__ = ["BaseSearchCV", "Constraint", "HasMethods", "Hidden", "Interval",
           "InvalidParameterError", "Options", "RealNotInt", "StrOptions",
           "check_sample_weight", "column_transformer_inputs", "make_constraint"]


def column_transformer_inputs(column_transformer):
    """The input column indices of each fitted transformer of a ColumnTransformer,
    by name (its private ``_transformer_to_input_indices``)."""
    return column_transformer._transformer_to_input_indices

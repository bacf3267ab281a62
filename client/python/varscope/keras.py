"""The part of tf.keras a ported model_fn uses with get_variable:
keras.regularizers (l1, l2, l1_l2, L1L2) with Keras' formulas, where l2 is
l * sum(x**2), twice tf.contrib.layers.l2_regularizer's value for the same
scale; keras.constraints (see varscope.constraints)."""

import types

from varscope import constraints
from varscope import regularizers as _regularizers

regularizers = types.SimpleNamespace(
    Regularizer=_regularizers.Regularizer,
    L1L2=_regularizers.L1L2,
    l1=_regularizers.keras_l1,
    l2=_regularizers.keras_l2,
    l1_l2=_regularizers.keras_l1_l2,
)

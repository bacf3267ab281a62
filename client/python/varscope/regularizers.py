"""Weight regularizers and the losses they put in REGULARIZATION_LOSSES.

    with vs.variable_scope("dense", regularizer=vs.l2_regularizer(1e-4)):
        w = vs.get_variable("kernel", [64, 32])
    vs.losses.get_regularization_loss()      # 1e-4 * sum(w**2) / 2, now

A regularizer is any callable taking a variable's value (a numpy array) and
returning its loss, or None for no loss. The built-in ones are TensorFlow
1's, under the tf.contrib.layers names and formulas (l1_regularizer,
l2_regularizer with its sum(w**2)/2, l1_l2_regularizer) and, in
varscope.keras.regularizers, tf.keras's (l1, l2 with sum(w**2), l1_l2).

get_variable with a regularizer (its own or its scope's) adds a
RegularizationLoss to this process's REGULARIZATION_LOSSES the first time
the process gets the variable other than with reuse=True, as TensorFlow does
when it makes the variable in its graph: one per variable, or per part of a
partitioned one. The loss is not a value but the regularizer applied to the
variable's current value whenever it is evaluated.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from varscope import ops


def no_regularizer(_: Any) -> None:
    """A regularizer that adds no loss (tf.compat.v1.no_regularizer), e.g.
    to turn a scope's regularizer off for one variable."""
    return None


class Regularizer:
    """A built-in regularizer: l1 * sum(|x|) + l2 * l2_factor * sum(x**2),
    computed in the value's dtype. It never returns None.

    `op_name` names its losses, as the op TensorFlow would create
    (`<variable>/Regularizer/<op_name>:0`).
    """

    def __init__(self, l1: float, l2: float, l2_factor: float,
                 op_name: str) -> None:
        self.l1 = float(l1)
        self.l2 = float(l2)
        self._l2_factor = l2_factor
        self.op_name = op_name

    def __call__(self, x: Any) -> Any:
        x = np.asarray(x)
        loss = np.zeros((), dtype=x.dtype)
        if self.l1:
            loss = loss + x.dtype.type(self.l1) * np.sum(np.abs(x))
        if self.l2:
            loss = loss + x.dtype.type(self.l2 * self._l2_factor) * np.sum(
                np.square(x))
        return loss

    def __repr__(self):
        return "<varscope.Regularizer %s l1=%g l2=%g>" % (self.op_name,
                                                          self.l1, self.l2)


def _check_scale(scale: Any, argument: str = "scale") -> None:
    """TensorFlow's checks of a contrib regularizer's scale."""
    if isinstance(scale, numbers.Integral):
        raise ValueError("%s cannot be an integer: %s" % (argument, scale))
    if isinstance(scale, numbers.Real) and scale < 0.0:
        raise ValueError(
            "Setting a scale less than 0 on a regularizer: %g" % scale)


def l1_regularizer(scale: float, scope: str | None = None) -> Any:
    """scale * sum(|w|), as tf.contrib.layers.l1_regularizer. A scale of 0
    gives no_regularizer. Raises ValueError for an integer or negative
    scale. `scope` names the losses (default "l1_regularizer")."""
    _check_scale(scale)
    if scale == 0.0:
        return no_regularizer
    return Regularizer(scale, 0.0, 0.5, scope or "l1_regularizer")


def l2_regularizer(scale: float, scope: str | None = None) -> Any:
    """scale * sum(w**2) / 2 (TensorFlow's l2_loss), as
    tf.contrib.layers.l2_regularizer. A scale of 0 gives no_regularizer.
    Raises ValueError for an integer or negative scale. `scope` names the
    losses (default "l2_regularizer")."""
    _check_scale(scale)
    if scale == 0.0:
        return no_regularizer
    return Regularizer(0.0, scale, 0.5, scope or "l2_regularizer")


def l1_l2_regularizer(scale_l1: float = 1.0, scale_l2: float = 1.0,
                      scope: str | None = None) -> Any:
    """l1_regularizer(scale_l1) + l2_regularizer(scale_l2), as
    tf.contrib.layers.l1_l2_regularizer (one of them alone when the other
    scale is 0). `scope` names the losses (default "l1_l2_regularizer")."""
    _check_scale(scale_l1, "scale_l1")
    _check_scale(scale_l2, "scale_l2")
    scope = scope or "l1_l2_regularizer"
    if scale_l1 == 0.0:
        return l2_regularizer(scale_l2, scope)
    if scale_l2 == 0.0:
        return l1_regularizer(scale_l1, scope)
    return Regularizer(scale_l1, scale_l2, 0.5, scope)


class L1L2(Regularizer):
    """tf.keras.regularizers.L1L2: l1 * sum(|x|) + l2 * sum(x**2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        super().__init__(l1, l2, 1.0, "L1L2")


def keras_l1(l: float = 0.01) -> L1L2:  # noqa: E741 (Keras' name)
    """tf.keras.regularizers.l1: l * sum(|x|)."""
    return L1L2(l1=l)


def keras_l2(l: float = 0.01) -> L1L2:  # noqa: E741 (Keras' name)
    """tf.keras.regularizers.l2: l * sum(x**2) (no halving, unlike
    l2_regularizer)."""
    return L1L2(l2=l)


def keras_l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """tf.keras.regularizers.l1_l2."""
    return L1L2(l1=l1, l2=l2)


def _op_name(regularizer: Any) -> str:
    """The last part of a regularization loss's name."""
    name = getattr(regularizer, "op_name", None) or getattr(
        regularizer, "__name__", type(regularizer).__name__)
    return "lambda" if name == "<lambda>" else name


class RegularizationLoss:
    """An entry of REGULARIZATION_LOSSES: `regularizer` applied to the
    current value of `variable` whenever it is evaluated (value(), float(),
    numpy.asarray). `name` is TensorFlow's name of the loss tensor, e.g.
    "dense/kernel/Regularizer/l2_regularizer:0", so that scope filters
    select it as TensorFlow's do."""

    def __init__(self, variable: Any, regularizer: Any) -> None:
        self.variable = variable
        self.regularizer = regularizer
        self.name = "%s/Regularizer/%s:0" % (variable._shared_name,
                                             _op_name(regularizer))

    def value(self) -> Any:
        """The loss of the variable's current value (one read)."""
        return self.regularizer(self.variable.read())

    numpy = value

    def __float__(self) -> float:
        return float(self.value())

    def __array__(self, dtype=None, copy=None):
        value = np.asarray(self.value())
        return value if dtype is None else value.astype(dtype)

    def __repr__(self):
        return "<varscope.RegularizationLoss '%s'>" % self.name


def add_loss(variable: Any, regularizer: Any) -> None:
    """Adds the loss of `regularizer` on `variable` (a Variable) to
    REGULARIZATION_LOSSES, unless the regularizer returns None for it, as
    TensorFlow checks (calling a regularizer that is not built in on the
    variable's current value)."""
    if regularizer is no_regularizer:
        return
    if not isinstance(regularizer, Regularizer) and regularizer(
            variable.read()) is None:
        return
    ops.add_to_collection(ops.GraphKeys.REGULARIZATION_LOSSES,
                          RegularizationLoss(variable, regularizer))

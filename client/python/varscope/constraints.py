"""Keras' built-in weight constraints (tf.keras.constraints), for
get_variable(constraint=...) and variable_scope(constraint=...):

    w = vs.get_variable("w", shape=[10, 4],
                        constraint=vs.keras.constraints.MaxNorm(2.0))

A built-in constraint is stored with the variable and applied by the server
after every optimizer step on it, in the same atomic step (Keras' formulas,
in float64): no reader ever sees the unconstrained value. Any other callable
`constraint(value) -> value` works too, applied by the client after
apply_gradients (a read and an assign: not atomic with the step; a reader
may see the unconstrained value in between). As in TensorFlow, a sparse
gradient for a constrained variable raises RuntimeError.
"""

from varscope import _varscope


class Constraint:
    """A built-in constraint (see the module doc), applied by the server."""

    _KIND = None

    def __init__(self, min_value=0.0, max_value=0.0, rate=0.0, axis=()):
        if axis is None:
            axis = ()
        elif isinstance(axis, int):
            axis = (axis,)
        self._params = dict(min_value=float(min_value),
                            max_value=float(max_value), rate=float(rate),
                            axis=[int(a) for a in axis])

    def _spec(self):
        return _varscope.ConstraintSpec(self._KIND, **self._params)

    def get_config(self):
        return dict(self._params)

    def __eq__(self, other):
        return (type(self) is type(other) and
                self._params == other._params)

    def __repr__(self):
        return "%s(%s)" % (self._KIND, ", ".join(
            "%s=%r" % item for item in sorted(self.get_config().items())))


class NonNeg(Constraint):
    """w * (w >= 0)."""
    _KIND = "NonNeg"

    def __init__(self):
        super().__init__()

    def get_config(self):
        return {}


class MaxNorm(Constraint):
    """Scales slices of w (over `axis`) whose norm exceeds max_value down to
    it."""
    _KIND = "MaxNorm"

    def __init__(self, max_value=2, axis=0):
        super().__init__(max_value=max_value, axis=axis)

    def get_config(self):
        return {"max_value": self._params["max_value"],
                "axis": self._params["axis"]}


class UnitNorm(Constraint):
    """Scales slices of w (over `axis`) to norm 1."""
    _KIND = "UnitNorm"

    def __init__(self, axis=0):
        super().__init__(axis=axis)

    def get_config(self):
        return {"axis": self._params["axis"]}


class MinMaxNorm(Constraint):
    """Moves the norms of slices of w (over `axis`) into [min_value,
    max_value], by the fraction `rate`."""
    _KIND = "MinMaxNorm"

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        super().__init__(min_value=min_value, max_value=max_value, rate=rate,
                         axis=axis)


# Keras' lower-case aliases.
non_neg = NonNeg
max_norm = MaxNorm
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_BY_NAME = {"non_neg": NonNeg, "nonneg": NonNeg, "max_norm": MaxNorm,
            "maxnorm": MaxNorm, "unit_norm": UnitNorm, "unitnorm": UnitNorm,
            "min_max_norm": MinMaxNorm, "minmaxnorm": MinMaxNorm}


def get(identifier):
    """A constraint from a name ("non_neg", "MaxNorm", ...), a constraint, a
    callable or None (as tf.keras.constraints.get)."""
    if identifier is None or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        kind = _BY_NAME.get(identifier.lower())
        if kind is not None:
            return kind()
    raise ValueError("Could not interpret constraint identifier: %r"
                     % (identifier,))


def from_server(description):
    """The Constraint a variable's (kind, min_value, max_value, rate, axis)
    describes, or None."""
    if description is None:
        return None
    kind, min_value, max_value, rate, axis = description
    constraint = {"NonNeg": NonNeg, "MaxNorm": MaxNorm, "UnitNorm": UnitNorm,
                  "MinMaxNorm": MinMaxNorm}[kind]()
    constraint._params = dict(min_value=min_value, max_value=max_value,
                              rate=rate, axis=list(axis))
    return constraint

"""TensorShape: a shape of known rank, as a tuple of ints (None: unknown)."""


def dimension_value(value):
    """A dimension as an int, or None when unknown (None or -1).

    Accepts what TensorFlow's Dimension accepts: ints (bools are ints),
    None, and objects with __index__ (numpy integers). Raises TypeError with
    TensorFlow's text for anything else (a float such as 2.5 would otherwise
    be truncated into another shape).
    """
    if value is None:
        return None
    try:
        value = int(value.__index__())
    except AttributeError:
        raise TypeError(
            "Dimension value must be integer or None or have an __index__ "
            "method, got value '{0!r}' with type '{1!r}'".format(
                value, type(value))) from None
    return None if value == -1 else value


class TensorShape(tuple):
    """A tuple of dimensions with TensorFlow's TensorShape methods.

    Compares and indexes as a tuple, so `variable.shape == (10, 1)`; each
    dimension is an int, or None when unknown (TensorFlow 2 behaviour).
    """

    def __new__(cls, dims):
        return super().__new__(cls, (dimension_value(d) for d in dims))

    @property
    def ndims(self):
        return len(self)

    @property
    def rank(self):
        return len(self)

    def as_list(self):
        return list(self)

    def is_fully_defined(self):
        return all(d is not None for d in self)

    def num_elements(self):
        """The number of elements, or None if a dimension is unknown."""
        if not self.is_fully_defined():
            return None
        count = 1
        for d in self:
            count *= d
        return count

    def is_compatible_with(self, other):
        """TensorFlow's rule: same rank, each pair equal or one unknown."""
        other = TensorShape(other)
        return len(self) == len(other) and all(
            a is None or b is None or a == b for a, b in zip(self, other))

    def __str__(self):
        if len(self) == 1:
            return "(%s,)" % self[0]
        return "(%s)" % ", ".join(str(d) for d in self)

    def __repr__(self):
        return "TensorShape(%s)" % list(self)

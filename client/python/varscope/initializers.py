"""Initializers under TensorFlow's tf.compat.v1 names and defaults.

An initializer passed to get_variable is not run in Python: its parameters go
to the server, which computes the initial value when it creates the variable
(the same seed gives the same value whichever worker creates it; no seed
means a random one). Calling an initializer, `init(shape, dtype)`, computes
the same value locally with the same C++ code, e.g. to preview it.

As in TensorFlow, the `dtype` given to a constructor is only the default for
such calls: get_variable always uses the variable's dtype. Constructors of
float-only initializers check it as TensorFlow does.
"""

import numpy as np

from varscope import _varscope
from varscope import dtypes

_MODES = {"fan_in": "FAN_IN", "fan_out": "FAN_OUT", "fan_avg": "FAN_AVG"}
_DISTRIBUTIONS = {
    "normal": "DIST_TRUNCATED_NORMAL",  # TensorFlow's deprecated alias
    "truncated_normal": "DIST_TRUNCATED_NORMAL",
    "untruncated_normal": "DIST_UNTRUNCATED_NORMAL",
    "uniform": "DIST_UNIFORM",
}


def _assert_float_dtype(dtype):
    dtype = dtypes.as_dtype(dtype)
    if not dtype.is_floating:
        raise ValueError("Expected floating point type, got %s." % dtype)
    return dtype


def constant_spec(value):
    """The server spec of a constant initial value (a numpy array)."""
    return _varscope.InitializerSpec(kind="CONSTANT", value=value)


class Initializer:
    """Base class: an initial value computed by the server.

    Subclasses implement `_spec(shape, dtype)`, the server spec for a
    variable of `dtype` and `shape` (a list; None or -1 entries when not
    fully known).
    """

    dtype = dtypes.float32

    def __call__(self, shape, dtype=None, partition_info=None):
        """The initial value of a `shape` variable, as a numpy array.

        With `partition_info` (full_shape, var_offset), the part of the full
        variable's value at that offset.
        """
        dtype = dtypes.as_dtype(self.dtype if dtype is None else dtype)
        shape = [int(d) for d in shape]
        full_shape, offset = shape, None
        if partition_info is not None:
            full_shape = list(partition_info.full_shape)
            offset = list(partition_info.var_offset)
        spec = self._spec(full_shape, dtype)
        return _varscope.initial_value(spec, dtype.as_datatype_enum,
                                       full_shape, offset, shape)

    def _spec(self, shape, dtype):
        raise NotImplementedError


class Zeros(Initializer):
    """All zeros (False for bool)."""

    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtypes.as_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(kind="ZEROS")


class Ones(Initializer):
    """All ones (True for bool)."""

    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtypes.as_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(kind="ONES")


class Constant(Initializer):
    """A constant: a scalar fills the variable; a list or array gives the
    values in row-major order, the last one repeated to fill the rest (as
    tf.compat.v1.constant_initializer). More values than elements is a
    ValueError.

    With `verify_shape`, the value's shape must equal the variable's
    (TypeError otherwise).
    """

    def __init__(self, value=0, dtype=dtypes.float32, verify_shape=False):
        if not (np.isscalar(value) or
                isinstance(value, (list, tuple, np.ndarray))):
            raise TypeError(
                "Invalid type for initial value: %s (expected Python scalar, "
                "list or tuple of values, or numpy.ndarray)." % type(value))
        self.value = value
        self.dtype = dtypes.as_dtype(dtype)
        self._verify_shape = verify_shape

    def _spec(self, shape, dtype):
        value = dtypes.to_numpy(self.value, dtype)
        if self._verify_shape and value.shape != tuple(shape):
            raise TypeError("Expected Tensor's shape: %s, got %s." %
                            (tuple(shape), value.shape))
        return constant_spec(value)


class RandomUniform(Initializer):
    """Uniform in [minval, maxval); maxval defaults to 1 for floating dtypes
    and is required for integer ones."""

    def __init__(self, minval=0, maxval=None, seed=None,
                 dtype=dtypes.float32):
        self.minval = minval
        self.maxval = maxval
        self.seed = seed
        self.dtype = dtypes.as_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(
            kind="RANDOM_UNIFORM", minval=self.minval, maxval=self.maxval,
            seed=self.seed)


class RandomNormal(Initializer):
    """Normal with mean `mean` and standard deviation `stddev`."""

    _KIND = "RANDOM_NORMAL"

    def __init__(self, mean=0.0, stddev=1.0, seed=None,
                 dtype=dtypes.float32):
        self.mean = mean
        self.stddev = stddev
        self.seed = seed
        self.dtype = _assert_float_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(kind=self._KIND, mean=self.mean,
                                         stddev=self.stddev, seed=self.seed)


class TruncatedNormal(RandomNormal):
    """As RandomNormal, redrawing values more than 2 stddev from the mean."""

    _KIND = "TRUNCATED_NORMAL"


class VarianceScaling(Initializer):
    """Scaled to the weight's fans: with n the fan_in, fan_out or their
    average (`mode`), a truncated normal of stddev sqrt(scale / n) (after
    truncation), an untruncated normal of that stddev, or a uniform in
    [-sqrt(3 scale / n), sqrt(3 scale / n)] (`distribution`). Partitioned
    variables use the full shape's fans.
    """

    def __init__(self, scale=1.0, mode="fan_in",
                 distribution="truncated_normal", seed=None,
                 dtype=dtypes.float32):
        if scale <= 0.:
            raise ValueError("`scale` must be positive float.")
        if mode not in _MODES:
            raise ValueError("Invalid `mode` argument:", mode)
        distribution = distribution.lower()
        if distribution not in _DISTRIBUTIONS:
            raise ValueError("Invalid `distribution` argument:", distribution)
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.seed = seed
        self.dtype = _assert_float_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(
            kind="VARIANCE_SCALING", scale=self.scale, mode=_MODES[self.mode],
            distribution=_DISTRIBUTIONS[self.distribution], seed=self.seed)


class GlorotUniform(VarianceScaling):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(scale=1.0, mode="fan_avg", distribution="uniform",
                         seed=seed)


class GlorotNormal(VarianceScaling):
    """Truncated normal of stddev sqrt(2 / (fan_in + fan_out))."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(scale=1.0, mode="fan_avg",
                         distribution="truncated_normal", seed=seed)


class Orthogonal(Initializer):
    """`gain` times a random orthogonal matrix (rows or columns orthonormal,
    the shape flattened to 2-D as (prod(shape[:-1]), shape[-1]))."""

    def __init__(self, gain=1.0, seed=None, dtype=dtypes.float32):
        self.gain = gain
        self.seed = seed
        self.dtype = _assert_float_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(kind="ORTHOGONAL", gain=self.gain,
                                         seed=self.seed)


class Identity(Initializer):
    """`gain` times the identity matrix (2-D variables only)."""

    def __init__(self, gain=1.0, dtype=dtypes.float32):
        self.gain = gain
        self.dtype = _assert_float_dtype(dtype)

    def _spec(self, shape, dtype):
        return _varscope.InitializerSpec(kind="IDENTITY", gain=self.gain)


# tf.compat.v1 names.
zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_uniform_initializer = RandomUniform
random_normal_initializer = RandomNormal
truncated_normal_initializer = TruncatedNormal
variance_scaling_initializer = VarianceScaling
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal
orthogonal_initializer = Orthogonal
identity_initializer = Identity

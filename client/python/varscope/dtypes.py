"""Element types, as TensorFlow's tf.dtypes: float32, int64, bool, ...

A `DType` compares equal to itself, to its name ("float32", and TensorFlow's
aliases such as "float" or "double") and to the numpy dtype or scalar type of
the same name. Values travel as numpy arrays of `DType.as_numpy_dtype`;
numpy has no bfloat16, so bfloat16 values are float32 arrays in Python (reads
return float32; writes are rounded to bfloat16 on the way in).
"""

import builtins
import numbers

import numpy as np

from varscope import _varscope


class DType:
    """One element type. Immutable; use the module constants or as_dtype()."""

    def __init__(self, enum, name, size, is_floating, is_integer):
        self._enum = enum
        self._name = name
        self._size = size
        self._is_floating = is_floating
        self._is_integer = is_integer
        numpy_name = "float32" if name == "bfloat16" else name
        self._numpy_type = np.dtype(numpy_name).type

    @property
    def name(self):
        """TensorFlow's name, e.g. "float32"."""
        return self._name

    @property
    def as_datatype_enum(self):
        """TensorFlow's DataType enum value (the same numbers on the wire)."""
        return self._enum

    @property
    def as_numpy_dtype(self):
        """The numpy scalar type of values (np.float32 for bfloat16)."""
        return self._numpy_type

    @property
    def base_dtype(self):
        return self

    @property
    def size(self):
        """Bytes per element."""
        return self._size

    @property
    def is_floating(self):
        return self._is_floating

    @property
    def is_integer(self):
        return self._is_integer

    @property
    def is_bool(self):
        return self._name == "bool"

    @property
    def is_unsigned(self):
        return self._name.startswith("uint")

    def __eq__(self, other):
        if isinstance(other, DType):
            return self._enum == other._enum
        try:
            return self._enum == as_dtype(other)._enum
        except TypeError:
            return False

    def __hash__(self):
        return self._enum

    def __str__(self):
        return "<dtype: '%s'>" % self._name

    def __repr__(self):
        return "varscope." + self._name

    def __reduce__(self):
        return as_dtype, (self._name,)


_BY_ENUM = {row[0]: DType(*row) for row in _varscope.dtypes()}
_BY_NAME = {dtype.name: dtype for dtype in _BY_ENUM.values()}

float32 = _BY_NAME["float32"]
float64 = _BY_NAME["float64"]
float16 = _BY_NAME["float16"]
bfloat16 = _BY_NAME["bfloat16"]
int8 = _BY_NAME["int8"]
uint8 = _BY_NAME["uint8"]
int16 = _BY_NAME["int16"]
int32 = _BY_NAME["int32"]
int64 = _BY_NAME["int64"]
bool = _BY_NAME["bool"]  # pylint: disable=redefined-builtin
half = float16
double = float64

# Python types TensorFlow maps itself rather than through numpy.
_PYTHON_TYPES = {float: float32, builtins.bool: bool}


def as_dtype(type_value):
    """The DType of a DType, a name, a numpy dtype or type, a Python type, or
    a DataType enum value.

    Raises TypeError (TensorFlow's text) for anything else, including numpy
    types Varscope does not support.
    """
    if isinstance(type_value, DType):
        return type_value
    if isinstance(type_value, int) and type_value in _BY_ENUM:
        return _BY_ENUM[type_value]
    if isinstance(type_value, str):
        try:
            return _BY_ENUM[_varscope.parse_dtype(type_value)]
        except ValueError:
            pass
    elif isinstance(type_value, type) and type_value in _PYTHON_TYPES:
        return _PYTHON_TYPES[type_value]
    else:
        try:
            return _BY_NAME[np.dtype(type_value).name]
        except (TypeError, KeyError):
            pass
    raise TypeError("Cannot convert value %r to a TensorFlow DType." %
                    (type_value,))


def infer_dtype(value):
    """The dtype TensorFlow's convert_to_tensor gives `value`.

    numpy arrays and scalars keep their dtype; Python floats become float32,
    Python ints int32 (int64 if any is out of int32's range), bools bool.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        return as_dtype(value.dtype)
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return float32
    if array.dtype.kind in "iu":
        info = np.iinfo(np.int32)
        fits = array.size == 0 or (array.min() >= info.min and
                                   array.max() <= info.max)
        return int32 if fits else int64
    return as_dtype(array.dtype)


def _python_types_of(dtype):
    """Python scalar types TensorFlow accepts for `dtype` (its
    _AssertCompatible)."""
    if dtype.is_bool:
        return (builtins.bool, np.bool_)
    if dtype.is_integer:
        return (numbers.Integral, np.integer)
    return (numbers.Real, np.integer, np.floating)


def _first_incompatible(values, accepted):
    """The first scalar in nested lists `values` not of `accepted`, or None."""
    if isinstance(values, (list, tuple)):
        for value in values:
            bad = _first_incompatible(value, accepted)
            if bad is not None:
                return bad
        return None
    return None if isinstance(values, accepted) else values


def to_numpy(value, dtype):
    """`value` (array-like) as a numpy array of `dtype.as_numpy_dtype`.

    Python scalars and (nested) lists follow TensorFlow's rules: ints convert
    to floating dtypes, floats do not convert to integer dtypes, only bools
    to bool (TypeError with TensorFlow's text otherwise). numpy values (and
    objects with __array__, such as Variables) convert when numpy's same_kind
    casting allows it (float64 to float32, int to
    float, int64 to int32), else TypeError. ValueError if an integer does not
    fit the dtype.
    """
    dtype = as_dtype(dtype)
    target = np.dtype(dtype.as_numpy_dtype)
    if type(value) is np.ndarray and value.dtype == target:
        return value  # the common case, with nothing to check or convert
    if isinstance(value, np.generic) or hasattr(value, "__array__"):
        array = np.asarray(value)
        if not np.can_cast(array.dtype, target, "same_kind"):
            raise TypeError("Cannot convert a value of numpy dtype %s to %s." %
                            (array.dtype, dtype.name))
    else:
        bad = _first_incompatible(value, _python_types_of(dtype))
        if bad is not None:
            raise TypeError("Expected %s, got %s of type '%s' instead." %
                            (dtype.name, repr(bad), type(bad).__name__))
        array = np.asarray(value)
    converted = array.astype(target, copy=False)
    if dtype.is_integer and not np.array_equal(converted, array):
        raise ValueError("Value out of range for dtype %s: %r" %
                         (dtype.name, value))
    return converted

"""Variables: reads and updates of every dtype, conversions, versions, and the
DType class."""

import pickle

import numpy as np
import pytest

import varscope as vs
from varscope import errors

ALL_DTYPES = [vs.float32, vs.float64, vs.float16, vs.bfloat16, vs.int8,
              vs.uint8, vs.int16, vs.int32, vs.int64, vs.bool]
NUMERIC_DTYPES = [d for d in ALL_DTYPES if not d.is_bool]


def sample(dtype, shape=(2, 3)):
    """Values exactly representable in `dtype`."""
    if dtype.is_bool:
        return np.arange(6).reshape(shape) % 2 == 0
    values = np.arange(6).reshape(shape) - (0 if dtype.is_unsigned else 2)
    return (values * (0.5 if dtype.is_floating else 1)).astype(
        dtype.as_numpy_dtype)


@pytest.mark.usefixtures("server")
class TestRoundTrip:

    @pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
    def test_assign_and_read(self, dtype):
        v = vs.get_variable("v", shape=[2, 3], dtype=dtype)
        assert v.dtype == dtype
        value = sample(dtype)
        assert v.assign(value, read_value=False) is v
        out = v.read()
        assert out.dtype == dtype.as_numpy_dtype
        assert out.shape == (2, 3)
        np.testing.assert_array_equal(out, value)
        np.testing.assert_array_equal(v.numpy(), value)
        np.testing.assert_array_equal(np.asarray(v), value)

    def test_pushed_arrays_are_sent_as_they_were_at_the_call(self):
        """assign sends a large array from its own memory: what the server
        keeps is the array at the call, whatever happens to it after, and a
        strided array (a view in another order) sends its elements in row
        order."""
        v = vs.get_variable("v", shape=[1 << 20], dtype=vs.float32)
        value = np.arange(1 << 20, dtype=np.float32)
        v.assign(value, read_value=False)
        value[:] = -1
        np.testing.assert_array_equal(v.read(),
                                      np.arange(1 << 20, dtype=np.float32))
        m = vs.get_variable("m", shape=[2, 3], dtype=vs.int32)
        transposed = np.arange(6, dtype=np.int32).reshape(3, 2).T
        m.assign_add(transposed, read_value=False)
        np.testing.assert_array_equal(m.read(), [[0, 2, 4], [1, 3, 5]])

    @pytest.mark.parametrize("shape", [[2, 3], [3 << 18]], ids=["small",
                                                                 "3MiB"])
    def test_values_are_arrays_of_their_own(self, shape):
        """Reads and returned values take over the received bytes: each is
        writable, aligned, and shares nothing with the next one."""
        v = vs.get_variable("v", shape=shape, dtype=vs.float32)
        value = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        back = v.assign(value)
        first, second = v.read(), v.read()
        for out in (back, first, second):
            assert out.flags.writeable and out.flags.aligned
            np.testing.assert_array_equal(out, value)
        first += 1
        back[...] = 0
        np.testing.assert_array_equal(second, value)
        np.testing.assert_array_equal(v.read(), value)
        del v, back, second
        np.testing.assert_array_equal(first, value + 1)

    @pytest.mark.parametrize("dtype", NUMERIC_DTYPES, ids=str)
    def test_assign_add_returns_the_new_value(self, dtype):
        v = vs.get_variable("v", shape=[2, 3], dtype=dtype,
                            initializer=vs.ones_initializer())
        new = v.assign_add(sample(dtype), read_value=True)
        expected = (sample(dtype) + 1).astype(dtype.as_numpy_dtype)
        np.testing.assert_array_equal(new, expected)
        np.testing.assert_array_equal(v.read(), expected)

    def test_bfloat16_is_float32_in_python_and_rounded(self):
        v = vs.get_variable("v", shape=[3], dtype=vs.bfloat16)
        assert vs.bfloat16.as_numpy_dtype is np.float32
        v.assign([1.0, 1.001, 3.0e38])
        out = v.read()
        assert out.dtype == np.float32
        # bfloat16 keeps 8 significant bits: 1.001 rounds to 1.
        np.testing.assert_array_equal(out[:2], [1.0, 1.0])
        assert out[2] == pytest.approx(3.0e38, rel=1e-2)

    def test_scalar(self):
        v = vs.get_variable("s", shape=[], dtype=vs.int64)
        assert v.assign_add(5, read_value=True) == 5
        assert v.read().shape == ()


@pytest.mark.usefixtures("server")
class TestUpdates:

    def test_versions_count_updates(self):
        v = vs.get_variable("v", shape=[2])
        assert v.version == 1
        v.assign([1, 2])
        v.assign_add([1, 1])
        v.assign_sub([0.5, 0.5])
        assert v.version == 4
        np.testing.assert_array_equal(v.read(), [1.5, 2.5])

    def test_python_lists_convert_safely(self):
        v = vs.get_variable("v", shape=[2], dtype=vs.float32)
        v.assign([1, 2])
        v.assign(np.array([1.5, 2.5]))  # float64 to float32: same kind
        np.testing.assert_array_equal(v.read(), [1.5, 2.5])

    def test_shape_mismatch_is_invalid_argument(self):
        v = vs.get_variable("v", shape=[2, 1])
        with pytest.raises(errors.InvalidArgumentError) as e:
            v.assign([1.0, 2.0])
        assert str(e.value) == ("Cannot assign a tensor of shape (2,) to "
                                "variable v of shape (2, 1)")
        with pytest.raises(ValueError, match="Cannot add a tensor of shape"):
            v.assign_add(np.zeros((1, 2)))

    def test_float_into_int_variable_is_type_error(self):
        v = vs.get_variable("i", shape=[2], dtype=vs.int32)
        with pytest.raises(TypeError) as e:
            v.assign([1, 1.5])
        assert str(e.value) == ("Expected int32, got 1.5 of type 'float' "
                                "instead.")
        with pytest.raises(TypeError):
            v.assign(np.array([1.0, 2.0]))

    def test_integer_overflow_is_value_error(self):
        v = vs.get_variable("i", shape=[1], dtype=vs.int8)
        with pytest.raises(ValueError, match="out of range"):
            v.assign([300])

    def test_bool_takes_only_bools(self):
        v = vs.get_variable("b", shape=[2], dtype=vs.bool)
        v.assign([True, False])
        with pytest.raises(TypeError, match="Expected bool, got 1"):
            v.assign([1, 0])
        with pytest.raises(errors.InvalidArgumentError):
            v.assign_add([True, True])

    def test_handles_of_one_variable_see_each_others_updates(self):
        with vs.variable_scope("s", reuse=vs.AUTO_REUSE):
            a = vs.get_variable("v", shape=[1])
            b = vs.get_variable("v", shape=[1])
        a.assign([3.0])
        np.testing.assert_array_equal(b.read(), [3.0])

    def test_deleted_variable_is_not_found(self):
        v = vs.get_variable("v", shape=[1])
        assert vs.delete_variable(v) == 1
        with pytest.raises(errors.NotFoundError) as e:
            v.read()
        assert str(e.value) == "Variable v does not exist."
        with pytest.raises(errors.NotFoundError):
            vs.delete_variable("v")


@pytest.mark.usefixtures("server")
def test_list_and_delete_variables():
    with vs.variable_scope("m"):
        vs.get_variable("w", shape=[2, 3])
        with vs.variable_scope("inner"):
            vs.get_variable("b", shape=[3])
    vs.get_variable("top", shape=[])
    assert vs.list_variables() == [("m/inner/b", [3]), ("m/w", [2, 3]),
                                   ("top", [])]
    assert vs.list_variables("m", recursive=False) == [("m/w", [2, 3])]
    assert vs.delete_variable("m", recursive=True) == 2
    assert vs.list_variables() == [("top", [])]


class TestDType:

    def test_names_and_strings(self):
        assert vs.float32.name == "float32"
        assert str(vs.int64) == "<dtype: 'int64'>"
        assert repr(vs.bool) == "varscope.bool"
        assert [d.name for d in ALL_DTYPES] == [
            "float32", "float64", "float16", "bfloat16", "int8", "uint8",
            "int16", "int32", "int64", "bool"]

    @pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
    def test_equality(self, dtype):
        assert dtype == dtype.name
        assert dtype == vs.as_dtype(dtype.name)
        assert vs.as_dtype(dtype.as_datatype_enum) is dtype
        assert pickle.loads(pickle.dumps(dtype)) is dtype
        if dtype is not vs.bfloat16:
            assert dtype == np.dtype(dtype.name)
            assert dtype == dtype.as_numpy_dtype
        assert dtype != "complex64"
        assert {dtype: 1}[vs.as_dtype(dtype.name)] == 1

    def test_aliases_and_python_types(self):
        assert vs.as_dtype("float") is vs.float32
        assert vs.as_dtype("double") is vs.float64
        assert vs.as_dtype("half") is vs.float16
        assert vs.as_dtype(float) is vs.float32
        assert vs.as_dtype(bool) is vs.bool
        assert vs.as_dtype(np.int32) is vs.int32
        assert vs.float32 != vs.float64

    def test_unknown_is_type_error(self):
        with pytest.raises(TypeError) as e:
            vs.as_dtype("complex64")
        assert str(e.value) == ("Cannot convert value 'complex64' to a "
                                "TensorFlow DType.")
        with pytest.raises(TypeError):
            vs.as_dtype(np.complex64)

    def test_properties(self):
        assert vs.float16.size == 2 and vs.int64.size == 8
        assert vs.bfloat16.is_floating and not vs.int8.is_floating
        assert vs.uint8.is_integer and vs.uint8.is_unsigned
        assert vs.bool.is_bool and not vs.bool.is_integer

"""get_variable's semantics (DESIGN.md §1) through the Python API, with
TensorFlow's exact texts."""

import numpy as np
import pytest

import varscope as vs
from varscope import errors

pytestmark = pytest.mark.usefixtures("server")

ALREADY_EXISTS = ("Variable {} already exists, disallowed. Did you mean to "
                  "set reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
DOES_NOT_EXIST = ("Variable {} does not exist, or was not created with "
                  "tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE "
                  "in VarScope?")


def make(name, shape=(10, 1), **kwargs):
    with vs.variable_scope("a", reuse=vs.AUTO_REUSE):
        return vs.get_variable(name, shape=shape, **kwargs)


def test_create_missing_creates():
    with vs.variable_scope("my_scope"):
        w = vs.get_variable("weights", shape=[10, 1],
                            initializer=vs.zeros_initializer())
    assert w.name == "my_scope/weights:0"
    assert w.shape == (10, 1)
    assert w.get_shape().as_list() == [10, 1]
    assert w.dtype == vs.float32
    assert w.version == 1
    assert w.created
    assert w.trainable
    np.testing.assert_array_equal(w.read(), np.zeros((10, 1), np.float32))


def test_create_existing_raises_already_exists():
    make("b")
    with vs.variable_scope("a"):
        with pytest.raises(errors.AlreadyExistsError) as e:
            vs.get_variable("b", shape=[10, 1])
    assert isinstance(e.value, ValueError)
    assert str(e.value) == ALREADY_EXISTS.format("a/b")
    assert e.value.error_code == errors.ALREADY_EXISTS


def test_root_scope_creates():
    vs.get_variable("v", shape=[2])
    with pytest.raises(ValueError, match="^Variable v already exists"):
        vs.get_variable("v", shape=[2])


def test_reuse_existing_returns_it_ignoring_initializer_and_trainable():
    make("b", initializer=vs.ones_initializer())
    with vs.variable_scope("a", reuse=True):
        w = vs.get_variable("b", shape=[10, 1],
                            initializer=vs.zeros_initializer(),
                            trainable=False)
    assert not w.created
    assert w.trainable
    np.testing.assert_array_equal(w.read(), np.ones((10, 1)))


def test_reuse_missing_raises_not_found_naming_other_scopes():
    with vs.variable_scope("model"):
        with vs.variable_scope("my_scope"):
            vs.get_variable("weights", shape=[10, 1])
    with vs.variable_scope("my_scope", reuse=True):
        with pytest.raises(errors.NotFoundError) as e:
            vs.get_variable("weights", shape=[10, 1])
    assert isinstance(e.value, ValueError)
    assert str(e.value) == (DOES_NOT_EXIST.format("my_scope/weights") +
                            " Variables named 'weights' exist at: "
                            "model/my_scope/weights")


def test_reuse_missing_without_near_matches_has_tf_text_only():
    with vs.variable_scope("s", reuse=True):
        with pytest.raises(errors.NotFoundError) as e:
            vs.get_variable("nothing_like_it", shape=[1])
    assert str(e.value) == DOES_NOT_EXIST.format("s/nothing_like_it")


def test_auto_reuse_gets_or_creates():
    first = make("b", initializer=vs.ones_initializer())
    second = make("b", initializer=vs.zeros_initializer())
    assert first.created and not second.created
    assert second.name == first.name
    np.testing.assert_array_equal(second.read(), np.ones((10, 1)))


@pytest.mark.parametrize("shape", [[10, 1], [None, 1], [-1, 1], [10, None],
                                   [None, None], None])
def test_reuse_accepts_compatible_shapes(shape):
    make("b")
    with vs.variable_scope("a", reuse=True):
        w = vs.get_variable("b", shape=shape)
    assert w.shape == (10, 1)


@pytest.mark.parametrize("shape, text", [
    ([10, 2], "(10, 2)"),
    ([None, 2], "(None, 2)"),
    ([10], "(10,)"),
    ([10, 1, 1], "(10, 1, 1)"),
    ([], "()"),
])
def test_reuse_rejects_incompatible_shapes(shape, text):
    make("b")
    with vs.variable_scope("a", reuse=vs.AUTO_REUSE):
        with pytest.raises(errors.InvalidArgumentError) as e:
            vs.get_variable("b", shape=shape)
    assert str(e.value) == ("Trying to share variable a/b, but specified "
                            "shape %s and found shape (10, 1)." % text)


def test_reuse_rejects_other_dtype():
    make("b")
    with vs.variable_scope("a", reuse=True):
        with pytest.raises(ValueError) as e:
            vs.get_variable("b", shape=[10, 1], dtype=vs.float64)
    assert isinstance(e.value, errors.InvalidArgumentError)
    assert str(e.value) == ("Trying to share variable a/b, but specified "
                            "dtype float64 and found dtype float32.")


def test_new_variable_needs_a_fully_defined_shape():
    with pytest.raises(errors.InvalidArgumentError) as e:
        vs.get_variable("v", shape=[None, 3])
    assert str(e.value) == ("Shape of a new variable (v) must be fully "
                            "defined, but instead was (None, 3).")
    with pytest.raises(ValueError, match=r"instead was <unknown>\.$"):
        vs.get_variable("v")


def test_invalid_name_is_invalid_argument_naming_the_character():
    with pytest.raises(errors.InvalidArgumentError, match="'!'"):
        vs.get_variable("bad!name", shape=[1])


def test_dtype_defaults_and_forms():
    assert vs.get_variable("f", shape=[1]).dtype == vs.float32
    assert vs.get_variable("g", shape=[1], dtype="float64").dtype == "float64"
    assert vs.get_variable("h", shape=[1], dtype=np.int32).dtype == np.int32
    assert vs.get_variable("i", shape=[1], dtype=np.dtype("int16")).dtype == \
        vs.int16


def test_shape_forms():
    assert vs.get_variable("a", shape=5).shape == (5,)
    assert vs.get_variable("b", shape=(2, 3)).shape == (2, 3)
    assert vs.get_variable("c", shape=np.array([4])).shape == (4,)
    assert vs.get_variable("d", shape=[]).shape == ()
    assert vs.get_variable("e", shape=[np.int32(2), True]).shape == (2, 1)


class Index:
    def __index__(self):
        return 3


@pytest.mark.parametrize("shape, text", [
    ([2.5], "'2.5' with type '<class 'float'>'"),
    (2.5, "'2.5' with type '<class 'float'>'"),
    ([2, np.float32(2)], "'2.0' with type '<class 'numpy.float32'>'"),
    (["3"], "''3'' with type '<class 'str'>'"),
    ("3", "''3'' with type '<class 'str'>'"),
])
def test_non_integer_dimensions_are_type_errors_as_in_tensorflow(shape, text):
    with pytest.raises(TypeError) as e:
        vs.get_variable("f", shape=shape)
    assert str(e.value) == ("Dimension value must be integer or None or have "
                            "an __index__ method, got value " + text)
    assert vs.list_variables() == []  # nothing created
    assert vs.get_variable("f", shape=[Index()]).shape == (3,)
    assert vs.TensorShape([Index(), None]) == (3, None)
    with pytest.raises(TypeError):
        vs.TensorShape([1.5])


def test_default_initializer_is_glorot_uniform_for_floats_zeros_otherwise():
    w = vs.get_variable("w", shape=[200, 300]).read()
    limit = np.sqrt(6 / 500)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.9 * limit
    np.testing.assert_array_equal(
        vs.get_variable("i", shape=[3], dtype=vs.int32).read(), [0, 0, 0])
    np.testing.assert_array_equal(
        vs.get_variable("b", shape=[2], dtype=vs.bool).read(), [False, False])


def test_trainable_is_stored():
    assert not vs.get_variable("t", shape=[1], trainable=False).trainable
    with vs.variable_scope(vs.get_variable_scope(), reuse=True):
        assert not vs.get_variable("t").trainable


class TestConstantInitializer:
    """A value as initializer: TensorFlow's initializing_from_value."""

    def test_shape_and_dtype_come_from_the_value(self):
        v = vs.get_variable("v", initializer=np.arange(6.).reshape(2, 3))
        assert v.shape == (2, 3)
        assert v.dtype == vs.float64
        np.testing.assert_array_equal(v.read(), np.arange(6.).reshape(2, 3))

    @pytest.mark.parametrize("value, dtype", [
        ([1.5, 2.5], vs.float32), ([1, 2], vs.int32), (3, vs.int32),
        ([[True], [False]], vs.bool), ([2 ** 40], vs.int64),
        (np.int16(7), vs.int16),
    ])
    def test_python_values_take_tensorflows_dtype(self, value, dtype):
        v = vs.get_variable("v", initializer=value)
        assert v.dtype == dtype
        np.testing.assert_array_equal(v.read(), value)

    def test_explicit_matching_dtype(self):
        v = vs.get_variable("v", initializer=[1., 2.], dtype=vs.float32)
        assert v.dtype == vs.float32

    def test_shape_with_a_constant_is_an_error(self):
        with pytest.raises(ValueError) as e:
            vs.get_variable("v", shape=[2], initializer=[1., 2.])
        assert str(e.value) == ("If initializer is a constant, do not specify "
                                "shape.")

    def test_dtype_mismatch_has_tensorflows_text(self):
        with pytest.raises(ValueError) as e:
            vs.get_variable("v", initializer=[1, 2], dtype=vs.float32)
        assert str(e.value) == ("Initializer type '<dtype: 'int32'>' and "
                                "explicit dtype '<dtype: 'float32'>' don't "
                                "match.")


class TestCallableInitializer:
    """Initializers that are neither Varscope's nor values: run in Python."""

    def test_called_with_shape_and_dtype_on_creation(self):
        calls = []

        def init(shape, dtype=None, partition_info=None):
            calls.append((shape, dtype, partition_info))
            return np.full(shape, 7)

        v = vs.get_variable("v", shape=[2, 2], dtype=vs.int64,
                            initializer=init)
        assert calls == [([2, 2], vs.int64, None)]
        np.testing.assert_array_equal(v.read(), np.full((2, 2), 7))

    def test_not_called_when_reusing(self):
        vs.get_variable("v", shape=[1])
        with vs.variable_scope(vs.get_variable_scope(), reuse=True):
            vs.get_variable("v", shape=[1], initializer=lambda *a, **k: 1 / 0)

    def test_wrong_shape_is_an_error(self):
        with pytest.raises(ValueError, match="returned a value of shape"):
            vs.get_variable("v", shape=[3],
                            initializer=lambda shape, dtype: np.zeros(2))

    def test_initializer_class_is_instantiated(self):
        v = vs.get_variable("v", shape=[2], initializer=vs.ones_initializer)
        np.testing.assert_array_equal(v.read(), [1, 1])


def test_ignored_arguments_are_accepted():
    v = vs.get_variable("v", shape=[1], caching_device="/cpu:0",
                        validate_shape=False, use_resource=True)
    assert v.created

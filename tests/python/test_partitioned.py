"""Partitioned variables and partitioners, with TensorFlow's texts."""

import numpy as np
import pytest

import varscope as vs
from varscope import errors

pytestmark = pytest.mark.usefixtures("server")


def partitioned(name="p", shape=(10, 2), num_shards=3, **kwargs):
    return vs.get_variable(name, shape=shape,
                           partitioner=vs.fixed_size_partitioner(num_shards),
                           **kwargs)


def auto_reuse():
    return vs.variable_scope(vs.get_variable_scope(), reuse=vs.AUTO_REUSE)


def reuse():
    return vs.variable_scope(vs.get_variable_scope(), reuse=True)


def test_parts_are_named_and_split_first_ones_longer():
    p = partitioned(initializer=vs.zeros_initializer())
    assert isinstance(p, vs.PartitionedVariable)
    assert p.name == "p"
    assert p.shape == (10, 2)
    assert p.dtype == vs.float32
    assert p.created
    assert len(p) == 3
    assert [v.name for v in p] == ["p/part_0:0", "p/part_1:0", "p/part_2:0"]
    assert [v.shape for v in p._get_variable_list()] == [(4, 2), (3, 2),
                                                          (3, 2)]
    assert p[1].name == "p/part_1:0"
    assert p._get_partitions() == [3, 1]
    assert [name for name, _ in vs.list_variables()] == [
        "p/part_0", "p/part_1", "p/part_2"]


def test_read_and_update_the_whole():
    p = partitioned(initializer=vs.zeros_initializer())
    value = np.arange(20, dtype=np.float32).reshape(10, 2)
    p.assign(value)
    np.testing.assert_array_equal(p.read(), value)
    np.testing.assert_array_equal(p[1].read(), value[4:7])
    np.testing.assert_array_equal(p.assign_add(value, read_value=True),
                                  2 * value)
    assert p.version == 3


def test_partitioning_another_axis():
    p = vs.get_variable("p", shape=[3, 5],
                        partitioner=vs.fixed_size_partitioner(2, axis=1))
    assert [v.shape for v in p] == [(3, 3), (3, 2)]
    value = np.arange(15, dtype=np.float32).reshape(3, 5)
    p.assign(value)
    np.testing.assert_array_equal(p.read(), value)
    np.testing.assert_array_equal(p[1].read(), value[:, 3:])


def test_reuse_without_partitioner_returns_it():
    partitioned()
    with reuse():
        p = vs.get_variable("p", shape=None)
    assert isinstance(p, vs.PartitionedVariable) and not p.created


def test_constant_initial_value_is_split():
    value = np.arange(10.0).reshape(5, 2)
    p = partitioned(shape=[5, 2], num_shards=2, initializer=value)
    np.testing.assert_array_equal(p.read(), value)
    with pytest.raises(ValueError, match="has shape"):
        partitioned("q", shape=[6, 2], initializer=value)


class TestErrors:

    def test_create_existing(self):
        partitioned()
        with pytest.raises(errors.AlreadyExistsError) as e:
            partitioned()
        assert str(e.value) == (
            "Partitioned variable with name p already exists. Did you mean to "
            "set reuse=True or reuse=tf.AUTO_REUSE in VarScope?")

    def test_reuse_missing(self):
        with reuse(), pytest.raises(errors.NotFoundError) as e:
            partitioned()
        assert str(e.value) == (
            "PartitionedVariable p does not exist, or was not created with "
            "tf.get_variable(). Did you mean to set reuse=False or "
            "reuse=tf.AUTO_REUSE in VarScope?")

    @pytest.mark.parametrize("kwargs, text", [
        ({"shape": [12, 2]}, "shape (12, 2) and found shape (10, 2)"),
        ({"dtype": vs.float64}, "dtype float64 and found dtype float32"),
        ({"num_shards": 2}, "partitions [2, 1] and found partitions [3, 1]"),
    ])
    def test_reuse_mismatch(self, kwargs, text):
        partitioned()
        with auto_reuse(), pytest.raises(errors.InvalidArgumentError) as e:
            partitioned(**kwargs)
        assert str(e.value) == ("Trying to reuse partitioned variable p, but "
                                "specified %s." % text)

    def test_no_partitioner_for_a_partitioned_variable(self):
        partitioned()
        with auto_reuse(), pytest.raises(ValueError) as e:
            vs.get_variable("p", shape=[10, 2])
        assert str(e.value) == (
            "No partitioner was provided, but a partitioned version of the "
            "variable was found: p/part_0. Perhaps a variable of the same "
            "name was already created with partitioning?")

    def test_partitioner_for_an_unpartitioned_variable(self):
        vs.get_variable("p", shape=[10, 2])
        with auto_reuse(), pytest.raises(ValueError) as e:
            partitioned()
        assert str(e.value) == (
            "A partitioner was provided, but an unpartitioned version of the "
            "variable was found: p.  Perhaps a variable of the same name was "
            "already created without partitioning?")

    @pytest.mark.parametrize("partitioner", [vs.fixed_size_partitioner(2),
                                             lambda shape, dtype: 1 / 0])
    @pytest.mark.parametrize("shape, text", [([None, 2], "(None, 2)"),
                                             (None, "<unknown>")])
    def test_shape_must_be_fully_defined(self, partitioner, shape, text):
        with pytest.raises(ValueError) as e:
            vs.get_variable("p", shape=shape, partitioner=partitioner)
        assert str(e.value) == ("Shape of a new partitioned variable must be "
                                "fully defined, but instead was %s." % text)

    def test_scalar_shape_ignores_the_partitioner(self):
        v = vs.get_variable("s", shape=[],
                            partitioner=lambda shape, dtype: 1 / 0)
        assert isinstance(v, vs.Variable)

    @pytest.mark.parametrize("result, text", [
        (3, "Partitioner must return a sequence, but saw: 3"),
        ([2], "Partitioner returned a partition list that does not match the "
              "Variable's rank: [2] vs. (10, 2)"),
        ([0, 1], "Partitioner returned zero partitions for some axes: [0, 1]"),
        ([2, 2], "Can only slice a variable along one dimension: shape: "
                 "(10, 2), partitioning: [2, 2]"),
    ])
    def test_bad_partitioner_results(self, result, text):
        with pytest.raises(ValueError) as e:
            vs.get_variable("p", shape=[10, 2],
                            partitioner=lambda shape, dtype: result)
        assert str(e.value) == text

    def test_partitioner_must_be_callable(self):
        with pytest.raises(ValueError) as e:
            vs.get_variable("p", shape=[10, 2], partitioner=3)
        assert str(e.value) == "Partitioner must be callable, but received: 3"


def test_custom_partitioner_is_called_with_shape_and_dtype():
    calls = []

    def by_rows(shape, dtype):
        calls.append((shape, dtype))
        return [shape[0] // 2, 1]

    p = vs.get_variable("p", shape=[6, 2], dtype=vs.float64,
                        partitioner=by_rows)
    assert len(p) == 3
    (shape, dtype), = calls
    assert shape.as_list() == [6, 2] and shape.is_fully_defined()
    assert dtype == vs.float64


class TestPartitioners:

    def test_fixed_size(self):
        assert vs.fixed_size_partitioner(3)(shape=[10, 2],
                                            dtype=vs.float32) == [3, 1]
        assert vs.fixed_size_partitioner(5, axis=1)([10, 2],
                                                    vs.float32) == [1, 2]

    def test_min_max_variable(self):
        partitioner = vs.min_max_variable_partitioner(max_partitions=8)
        assert partitioner([1024, 1024], vs.float32) == [8, 1]
        assert partitioner([1024, 256], vs.float32) == [4, 1]
        assert vs.min_max_variable_partitioner(max_partitions=8,
                                               min_slice_size=1 << 20)(
            [1024, 1024], vs.float64) == [8, 1]
        with pytest.raises(ValueError) as e:
            vs.min_max_variable_partitioner(axis=2)([10, 2], vs.float32)
        assert str(e.value) == ("Can not partition variable along axis 2 when "
                                "shape is only (10, 2)")

    def test_variable_axis_size(self):
        assert vs.variable_axis_size_partitioner(4000)([100, 10],
                                                       vs.float32) == [1, 1]
        assert vs.variable_axis_size_partitioner(400)([100, 10],
                                                      vs.float32) == [10, 1]
        assert vs.variable_axis_size_partitioner(400, max_shards=4)(
            [100, 10], vs.float32) == [4, 1]

    @pytest.mark.parametrize("kwargs, text", [
        ({"max_shard_bytes": 0},
         "Both max_shard_bytes and bytes_per_string_element must be "
         "positive."),
        ({"max_shard_bytes": 8, "bytes_per_string_element": 0},
         "Both max_shard_bytes and bytes_per_string_element must be "
         "positive."),
        ({"max_shard_bytes": 8, "max_shards": -1},
         "max_shards must be positive."),
    ])
    def test_variable_axis_size_arguments(self, kwargs, text):
        with pytest.raises(ValueError) as e:
            vs.variable_axis_size_partitioner(**kwargs)
        assert str(e.value) == text

    def test_server_partitioners_make_variables(self):
        p = vs.get_variable("p", shape=[100, 10], partitioner=(
            vs.variable_axis_size_partitioner(800)))
        assert len(p) == 5
        q = vs.get_variable("q", shape=[1024, 256], partitioner=(
            vs.min_max_variable_partitioner(max_partitions=8)))
        assert q._get_partitions() == [4, 1]

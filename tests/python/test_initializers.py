"""Initializers: the statistics of the values the server makes, determinism
given a seed (across processes), and TensorFlow's argument errors."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import varscope as vs
from varscope import errors

WORKER = str(pathlib.Path(__file__).with_name("worker.py"))


def created(initializer, shape, dtype=vs.float32, name="v"):
    v = vs.get_variable(name, shape=shape, dtype=dtype,
                        initializer=initializer)
    assert v.created
    return v.read()


@pytest.mark.usefixtures("server")
class TestStatistics:

    def test_zeros_and_ones(self):
        np.testing.assert_array_equal(created(vs.zeros_initializer(), [2]),
                                      [0, 0])
        np.testing.assert_array_equal(
            created(vs.ones_initializer(dtype=vs.int32), [2], vs.int64, "o"),
            [1, 1])

    def test_random_normal(self):
        x = created(vs.random_normal_initializer(mean=2.0, stddev=3.0,
                                                 seed=1), [20000])
        assert x.mean() == pytest.approx(2.0, abs=0.1)
        assert x.std() == pytest.approx(3.0, rel=0.03)

    def test_truncated_normal_stays_within_two_stddev(self):
        x = created(vs.truncated_normal_initializer(mean=1.0, stddev=0.5,
                                                    seed=2), [20000])
        assert np.abs(x - 1.0).max() < 1.0
        assert x.std() == pytest.approx(0.5 * 0.8796, rel=0.03)

    def test_random_uniform(self):
        x = created(vs.random_uniform_initializer(-1, 3, seed=3), [20000])
        assert x.min() >= -1 and x.max() < 3
        assert x.mean() == pytest.approx(1.0, abs=0.05)
        ints = created(vs.random_uniform_initializer(0, 5, seed=3), [1000],
                       vs.int32, "i")
        assert set(ints.tolist()) == {0, 1, 2, 3, 4}

    def test_random_uniform_integer_needs_maxval(self):
        with pytest.raises(errors.InvalidArgumentError) as e:
            created(vs.random_uniform_initializer(), [2], vs.int32)
        assert str(e.value) == "Must specify maxval for integer dtype tf.int32"

    def test_glorot_uniform(self):
        x = created(vs.glorot_uniform_initializer(seed=4), [100, 200])
        limit = np.sqrt(6 / 300)
        assert np.abs(x).max() <= limit
        assert x.std() == pytest.approx(limit / np.sqrt(3), rel=0.03)

    def test_glorot_normal(self):
        x = created(vs.glorot_normal_initializer(seed=5), [100, 200])
        assert x.std() == pytest.approx(np.sqrt(2 / 300), rel=0.03)
        assert np.abs(x).max() < 2 * np.sqrt(2 / 300) / 0.8796

    @pytest.mark.parametrize("mode, n", [("fan_in", 50), ("fan_out", 400),
                                         ("fan_avg", 225)])
    def test_variance_scaling_untruncated_normal(self, mode, n):
        x = created(vs.variance_scaling_initializer(
            scale=2.0, mode=mode, distribution="untruncated_normal", seed=6),
            [50, 400])
        assert x.std() == pytest.approx(np.sqrt(2.0 / n), rel=0.03)

    def test_variance_scaling_uniform_uses_the_receptive_field(self):
        x = created(vs.variance_scaling_initializer(
            mode="fan_in", distribution="UNIFORM", seed=7), [3, 3, 20, 64])
        limit = np.sqrt(3.0 / (3 * 3 * 20))
        assert np.abs(x).max() <= limit
        assert np.abs(x).max() > 0.95 * limit

    @pytest.mark.parametrize("shape", [[30, 10], [10, 30], [2, 5, 6]])
    def test_orthogonal(self, shape):
        x = created(vs.orthogonal_initializer(gain=2.0, seed=8), shape)
        flat = x.reshape(-1, shape[-1])
        small = flat.T @ flat if flat.shape[0] >= flat.shape[1] else \
            flat @ flat.T
        np.testing.assert_allclose(small, 4 * np.eye(len(small)), atol=1e-4)

    def test_identity(self):
        np.testing.assert_array_equal(
            created(vs.identity_initializer(gain=2.0), [3, 4]),
            2 * np.eye(3, 4))
        with pytest.raises(errors.InvalidArgumentError) as e:
            created(vs.identity_initializer(), [3], name="w")
        assert str(e.value) == ("Identity matrix initializer can only be used "
                                "for 2D matrices.")

    def test_constant_pads_with_its_last_value(self):
        np.testing.assert_array_equal(
            created(vs.constant_initializer([1, 2, 3, 4]), [2, 3]),
            [[1, 2, 3], [4, 4, 4]])
        np.testing.assert_array_equal(
            created(vs.constant_initializer(7), [2], vs.int16, "s"), [7, 7])

    def test_constant_errors(self):
        with pytest.raises(errors.InvalidArgumentError) as e:
            created(vs.constant_initializer(list(range(7))), [2, 3])
        assert str(e.value) == ("Too many elements provided. Needed at most "
                                "6, but received 7")
        with pytest.raises(TypeError) as e:
            created(vs.constant_initializer([1.5]), [1], vs.int32)
        assert str(e.value) == ("Expected int32, got 1.5 of type 'float' "
                                "instead.")
        with pytest.raises(TypeError) as e:
            created(vs.constant_initializer([1, 2], verify_shape=True), [3])
        assert str(e.value) == "Expected Tensor's shape: (3,), got (2,)."

    def test_random_kinds_need_floating_dtypes(self):
        with pytest.raises(ValueError) as e:
            created(vs.random_normal_initializer(), [2], vs.int32)
        assert str(e.value) == ("Expected floating point type, got "
                                "<dtype: 'int32'>.")


@pytest.mark.usefixtures("server")
class TestDeterminism:

    def test_same_seed_same_value_from_other_processes(self, server,
                                                      child_env):
        values = [json.loads(subprocess.run(
            [sys.executable, WORKER, "seeded", server.address, name, "42"],
            env=child_env, check=True, capture_output=True, text=True,
            timeout=300).stdout) for name in ("p1", "p2")]
        here = vs.get_variable("here", shape=[100], initializer=(
            vs.random_normal_initializer(seed=42))).read()
        np.testing.assert_array_equal(values[0], values[1])
        np.testing.assert_array_equal(np.float32(values[0]), here)

    def test_no_seed_differs(self):
        a = created(vs.random_normal_initializer(), [10], name="a")
        b = created(vs.random_normal_initializer(), [10], name="b")
        assert not np.array_equal(a, b)

    def test_local_call_matches_the_server(self):
        init = vs.truncated_normal_initializer(stddev=0.3, seed=11)
        local = init([4, 3], dtype=vs.float64)
        assert local.dtype == np.float64
        np.testing.assert_array_equal(created(init, [4, 3], vs.float64),
                                      local)

    def test_partitioned_value_equals_unpartitioned(self):
        init = vs.glorot_uniform_initializer(seed=9)
        whole = created(init, [10, 4])
        parted = vs.get_variable("p", shape=[10, 4], initializer=init,
                                 partitioner=vs.fixed_size_partitioner(3))
        np.testing.assert_array_equal(parted.read(), whole)


class TestConstructorErrors:

    def test_variance_scaling(self):
        with pytest.raises(ValueError) as e:
            vs.variance_scaling_initializer(scale=0.0)
        assert str(e.value) == "`scale` must be positive float."
        with pytest.raises(ValueError) as e:
            vs.variance_scaling_initializer(mode="foo")
        assert e.value.args == ("Invalid `mode` argument:", "foo")
        with pytest.raises(ValueError) as e:
            vs.variance_scaling_initializer(distribution="Cauchy")
        assert e.value.args == ("Invalid `distribution` argument:", "cauchy")

    @pytest.mark.parametrize("factory", [
        vs.random_normal_initializer, vs.truncated_normal_initializer,
        vs.variance_scaling_initializer, vs.orthogonal_initializer,
        vs.identity_initializer])
    def test_float_only(self, factory):
        with pytest.raises(ValueError) as e:
            factory(dtype=vs.int32)
        assert str(e.value) == ("Expected floating point type, got "
                                "<dtype: 'int32'>.")

    def test_dtype_is_accepted(self):
        for factory in (vs.zeros_initializer, vs.ones_initializer,
                        vs.glorot_uniform_initializer,
                        vs.glorot_normal_initializer):
            factory(dtype=vs.float64)
        vs.random_uniform_initializer(dtype=vs.int32)
        vs.constant_initializer(1, dtype=vs.int64)

    def test_constant_value_type(self):
        with pytest.raises(TypeError) as e:
            vs.constant_initializer({"a": 1})
        assert str(e.value) == (
            "Invalid type for initial value: <class 'dict'> (expected Python "
            "scalar, list or tuple of values, or numpy.ndarray).")

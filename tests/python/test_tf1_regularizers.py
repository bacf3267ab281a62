"""regularizer= and custom_getter= on get_variable and variable_scope, with
TensorFlow 1's formulas, names, registration rules and getter composition."""

import numpy as np
import pytest

import varscope as vs

pytestmark = pytest.mark.usefixtures("server")

W = np.array([[1.0, -2.0], [3.0, -4.0]], dtype=np.float32)  # sum w^2 = 30
LOSSES = vs.GraphKeys.REGULARIZATION_LOSSES


def names(items):
    return [item.name for item in items]


class TestRegularizers:

    @pytest.mark.parametrize("regularizer, expected, op", [
        (vs.l1_regularizer(0.1), 0.1 * 10, "l1_regularizer"),
        (vs.l2_regularizer(0.1), 0.1 * 30 / 2, "l2_regularizer"),
        (vs.l1_l2_regularizer(0.1, 0.2), 0.1 * 10 + 0.2 * 15,
         "l1_l2_regularizer"),
        (vs.l1_l2_regularizer(0.0, 0.2), 0.2 * 15, "l1_l2_regularizer"),
        (vs.l2_regularizer(0.1, scope="decay"), 1.5, "decay"),
        (vs.keras.regularizers.l1(0.1), 0.1 * 10, "L1L2"),
        (vs.keras.regularizers.l2(0.1), 0.1 * 30, "L1L2"),
        (vs.keras.regularizers.l1_l2(), 0.01 * 10 + 0.01 * 30, "L1L2"),
        (vs.keras.regularizers.L1L2(l2=0.5), 0.5 * 30, "L1L2"),
        (lambda w: 0.5 * np.sum(w), 0.5 * -2, "lambda"),
    ], ids=["l1", "l2", "l1_l2", "l1_l2_only_l2", "scope", "keras_l1",
            "keras_l2", "keras_l1_l2", "keras_L1L2", "callable"])
    def test_formulas_and_names(self, regularizer, expected, op):
        with vs.variable_scope("dense"):
            w = vs.get_variable("kernel", initializer=W,
                                regularizer=regularizer)
        (loss,) = vs.get_collection(LOSSES)
        assert loss.name == "dense/kernel/Regularizer/%s:0" % op
        assert loss.variable.name == w.name
        assert vs.losses.get_regularization_losses() == [
            pytest.approx(expected, rel=1e-6)]
        assert vs.losses.get_regularization_loss() == pytest.approx(
            expected, rel=1e-6)
        assert float(loss) == pytest.approx(expected, rel=1e-6)

    def test_loss_follows_the_current_value(self):
        w = vs.get_variable("w", initializer=W,
                            regularizer=vs.l2_regularizer(0.1))
        w.assign(2 * W)
        assert vs.losses.get_regularization_loss() == pytest.approx(6.0)
        w.assign(np.zeros([2, 2]))
        assert vs.losses.get_regularization_loss() == 0.0

    def test_scales_are_checked_as_tensorflow_does(self):
        with pytest.raises(ValueError, match="^scale cannot be an integer: "
                           "1$"):
            vs.l2_regularizer(1)
        with pytest.raises(ValueError, match="^Setting a scale less than 0 "
                           "on a regularizer: -0.1$"):
            vs.l1_regularizer(-0.1)
        with pytest.raises(ValueError, match="^scale_l2 cannot be an "
                           "integer: 2$"):
            vs.l1_l2_regularizer(0.5, 2)
        assert vs.l2_regularizer(0.0) is vs.no_regularizer
        assert vs.l1_l2_regularizer(0.0, 0.0) is vs.no_regularizer

    def test_scope_defaults_inheritance_and_opting_out(self):
        with vs.variable_scope("model", regularizer=vs.l2_regularizer(0.1)):
            vs.get_variable("a", initializer=W)
            with vs.variable_scope("inner"):
                vs.get_variable("b", initializer=W)
            vs.get_variable("c", initializer=W, regularizer=vs.no_regularizer)
            vs.get_variable("d", initializer=W, regularizer=lambda w: None)
            vs.get_variable("e", initializer=W,
                            regularizer=vs.l2_regularizer(0.0))
        assert names(vs.get_collection(LOSSES)) == [
            "model/a/Regularizer/l2_regularizer:0",
            "model/inner/b/Regularizer/l2_regularizer:0"]
        assert vs.losses.get_regularization_losses("model/inner") == [
            pytest.approx(1.5)]
        assert vs.losses.get_regularization_loss("model/inner") == \
            pytest.approx(1.5)
        assert vs.losses.get_regularization_loss("nothing") == 0.0

    def test_registered_once_per_process_and_not_on_reuse(self):
        def get():
            with vs.variable_scope("s", reuse=vs.AUTO_REUSE):
                return vs.get_variable("w", initializer=W,
                                       regularizer=vs.l2_regularizer(0.1))
        get()
        get()
        with vs.variable_scope("s", reuse=True):
            vs.get_variable("w", regularizer=vs.l2_regularizer(0.1))
        assert len(vs.get_collection(LOSSES)) == 1
        vs.reset_default_graph()  # another worker: reuse=True adds nothing
        with vs.variable_scope("s", reuse=True):
            vs.get_variable("w", regularizer=vs.l2_regularizer(0.1))
        assert vs.get_collection(LOSSES) == []
        get()  # its own first get does
        assert len(vs.get_collection(LOSSES)) == 1

    def test_partitioned_variables_have_a_loss_per_part(self):
        value = np.arange(12, dtype=np.float32).reshape(6, 2)
        vs.get_variable("emb", value.shape, initializer=value,
                        partitioner=vs.fixed_size_partitioner(3),
                        regularizer=vs.l2_regularizer(0.1))
        assert names(vs.get_collection(LOSSES)) == [
            "emb/part_%d/Regularizer/l2_regularizer:0" % i for i in range(3)]
        assert vs.losses.get_regularization_loss() == pytest.approx(
            0.1 * np.sum(value ** 2) / 2)

    def test_local_variables_and_other_items(self):
        vs.get_local_variable("local", initializer=W,
                              regularizer=vs.l1_regularizer(1.0))
        vs.add_to_collection(LOSSES, 0.25)
        assert vs.losses.get_regularization_losses() == [
            pytest.approx(10.0), 0.25]
        assert vs.losses.get_regularization_loss() == pytest.approx(10.25)
        vs.losses.add_loss(1.0)
        assert vs.losses.get_losses() == [1.0]


def suffix_getter(suffix, calls):
    def getter(getter, name, *args, **kwargs):
        calls.append(suffix)
        return getter(name + suffix, *args, **kwargs)
    return getter


class TestCustomGetters:

    def test_getter_sees_the_arguments_and_may_rename(self):
        seen = {}

        def getter(getter, name, shape=None, dtype=None, **kwargs):
            seen.update(kwargs, name=name, shape=shape, dtype=dtype)
            return getter(name + "_suffix", shape, dtype=dtype, **kwargs)

        with vs.variable_scope("s", initializer=vs.ones_initializer(),
                               reuse=vs.AUTO_REUSE):
            w = vs.get_variable("w", [2], custom_getter=getter)
        assert w.name == "s/w_suffix:0"
        np.testing.assert_array_equal(w.read(), [1, 1])
        assert seen["name"] == "s/w" and seen["shape"] == [2]
        assert seen["dtype"] == vs.float32 and seen["reuse"] is vs.AUTO_REUSE
        assert isinstance(seen["initializer"], vs.initializers.Ones)
        assert "constraint" in seen  # the getter takes **kwargs
        assert set(seen) >= {"regularizer", "trainable", "collections",
                             "caching_device", "partitioner",
                             "validate_shape", "use_resource",
                             "synchronization", "aggregation"}

    def test_getters_without_kwargs_get_no_constraint(self):
        def getter(getter, name, shape, dtype, initializer, regularizer,
                   reuse, trainable, collections, caching_device,
                   partitioner, validate_shape, use_resource,
                   synchronization, aggregation):
            return getter(name, shape, dtype, initializer, regularizer,
                          reuse, trainable, collections, caching_device,
                          partitioner, validate_shape, use_resource)
        assert vs.get_variable("w", [1], custom_getter=getter).name == "w:0"

    def test_nested_scopes_compose(self):
        calls = []
        with vs.variable_scope("a", custom_getter=suffix_getter("_a", calls)):
            with vs.variable_scope("b", custom_getter=suffix_getter("_b",
                                                                    calls)):
                w = vs.get_variable("w", [1])
                # An explicit getter replaces the scope's.
                x = vs.get_variable("x", [1],
                                    custom_getter=suffix_getter("_x", calls))
            with vs.variable_scope("c") as c:
                y = vs.get_variable("y", [1])
        # The innermost getter runs first, wrapping the outer one.
        assert (w.name, calls[:2]) == ("a/b/w_b_a:0", ["_b", "_a"])
        assert x.name == "a/b/x_x:0" and calls[2] == "_x"
        assert y.name == "a/c/y_a:0"
        # Re-entering a captured scope composes over its own getter.
        with vs.variable_scope(c, custom_getter=suffix_getter("_c", calls)):
            z = vs.get_variable("z", [1])
        assert z.name == "a/c/z_c_a:0"
        with vs.variable_scope("plain") as plain:
            plain.set_custom_getter(suffix_getter("_set", calls))
            assert vs.get_variable("v", [1]).name == "plain/v_set:0"

    def test_not_callable(self):
        with pytest.raises(ValueError, match="^Passed a custom_getter which "
                           "is not callable: 5$"):
            vs.get_variable("w", [1], custom_getter=5)

    def test_mixed_precision(self):
        def float32_storage(getter, name, shape=None, dtype=None,
                            initializer=None, regularizer=None,
                            trainable=True, *args, **kwargs):
            storage = vs.float32 if trainable else dtype
            variable = getter(name, shape, dtype=storage,
                              initializer=initializer,
                              regularizer=regularizer, trainable=trainable,
                              *args, **kwargs)
            if trainable and dtype != vs.float32:
                variable = vs.cast(variable, dtype)
            return variable

        with vs.variable_scope("fp16", custom_getter=float32_storage,
                               dtype=vs.float16):
            w = vs.get_variable("w", [2, 2],
                                initializer=vs.constant_initializer(0.1),
                                regularizer=vs.l2_regularizer(0.5))
            step = vs.get_variable("count", [], trainable=False,
                                   initializer=vs.zeros_initializer())
        assert isinstance(w, vs.variables.CastView)
        assert w.dtype == vs.float16 and w.name == "fp16/w:0"
        assert w.read().dtype == np.float16 and w.shape == (2, 2)
        np.testing.assert_array_equal(np.asarray(w), np.full(
            [2, 2], 0.1, np.float16))
        (master,) = vs.trainable_variables()
        assert master.name == "fp16/w:0" and master.dtype == vs.float32
        assert step.dtype == vs.float16  # not trainable: stored as asked
        # Training updates the float32 master; the view reads it.
        vs.train.GradientDescentOptimizer(1.0).apply_gradients(
            [(np.full([2, 2], 1e-4), master)])
        np.testing.assert_allclose(master.read(), 0.1 - 1e-4, rtol=1e-6)
        np.testing.assert_array_equal(
            w.read(), (master.read()).astype(np.float16))
        assert vs.losses.get_regularization_loss() == pytest.approx(
            0.5 * 4 * (0.1 - 1e-4) ** 2 / 2, rel=1e-5)

"""tf.compat.v1 training pieces: learning-rate schedules evaluated by the
server, optimizer names and slots, Adam's beta powers, constraints."""

import math

import numpy as np
import pytest

import varscope as vs
from varscope import errors



def names():
    return {name for name, _ in vs.list_variables()}


def float32_power(beta, n):
    """beta^n as TensorFlow's float32 beta power reaches it: starting at beta,
    multiplied by beta once per step."""
    power = np.float32(beta)
    for _ in range(n - 1):
        power = power * np.float32(beta)
    return power


def tf_rate(kind, lr, step, **p):
    """TensorFlow's schedules (learning_rate_decay.py), in float64."""
    if kind == "exponential_decay":
        e = step / p["decay_steps"]
        if p.get("staircase"):
            e = math.floor(e)
        return lr * p["decay_rate"] ** e
    if kind == "piecewise_constant":
        for boundary, value in zip(p["boundaries"], p["values"]):
            if step <= boundary:
                return value
        return p["values"][-1]
    if kind == "polynomial_decay":
        decay_steps = p["decay_steps"]
        if p.get("cycle"):
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        return ((lr - p["end_learning_rate"]) *
                (1 - step / decay_steps) ** p["power"] +
                p["end_learning_rate"])
    fraction = min(step, p["decay_steps"]) / p["decay_steps"]
    decayed = 0.5 * (1 + math.cos(math.pi * fraction))
    return lr * ((1 - p["alpha"]) * decayed + p["alpha"])


SCHEDULES = [
    ("exponential_decay", lambda s: vs.train.exponential_decay(
        0.5, s, decay_steps=3, decay_rate=0.5, staircase=True),
     dict(decay_steps=3, decay_rate=0.5, staircase=True)),
    ("exponential_decay", lambda s: vs.train.exponential_decay(
        0.5, s, decay_steps=3, decay_rate=0.5),
     dict(decay_steps=3, decay_rate=0.5)),
    ("piecewise_constant", lambda s: vs.train.piecewise_constant(
        s, [2, 4], [0.5, 0.25, 0.125]),
     dict(boundaries=[2, 4], values=[0.5, 0.25, 0.125])),
    ("polynomial_decay", lambda s: vs.train.polynomial_decay(
        0.5, s, decay_steps=3, end_learning_rate=0.01, power=2, cycle=True),
     dict(decay_steps=3, end_learning_rate=0.01, power=2, cycle=True)),
    ("polynomial_decay", lambda s: vs.train.polynomial_decay(
        0.5, s, decay_steps=3),
     dict(decay_steps=3, end_learning_rate=0.0001, power=1.0)),
    ("cosine_decay", lambda s: vs.train.cosine_decay(
        0.5, s, decay_steps=4, alpha=0.1), dict(decay_steps=4, alpha=0.1)),
]


@pytest.mark.parametrize("kind,make,params", SCHEDULES)
def test_schedules_are_evaluated_by_the_server_per_step(server, kind, make,
                                                        params):
    step = vs.train.get_or_create_global_step()
    schedule = make(step)
    w = vs.get_variable("w", shape=[1], dtype=vs.float64,
                        initializer=vs.zeros_initializer())
    opt = vs.train.GradientDescentOptimizer(schedule)
    expected = 0.0
    for at in range(8):  # past decay_steps, across boundaries and cycles
        assert schedule() == pytest.approx(tf_rate(kind, 0.5, at, **params),
                                           rel=1e-15, abs=0)
        opt.apply_gradients([(np.ones(1), w)], global_step=step)
        expected -= tf_rate(kind, 0.5, at, **params)
        assert w.read()[0] == pytest.approx(expected, rel=1e-14, abs=1e-15)
    assert vs.global_step() == 8


def test_schedule_arguments_as_tensorflow(server):
    step = vs.train.get_or_create_global_step()
    with pytest.raises(ValueError,
                       match="global_step is required for exponential_decay"):
        vs.train.exponential_decay(0.1, None, 10, 0.5)
    with pytest.raises(ValueError, match="cosine decay requires global_step"):
        vs.train.cosine_decay(0.1, None, 10)
    with pytest.raises(ValueError, match="The length of boundaries should be "
                                         "1 less than the length of values"):
        vs.train.piecewise_constant(step, [1, 2], [1.0])
    with pytest.raises(ValueError, match="decay_steps: 0 "):
        vs.train.polynomial_decay(0.1, step, 0)
    # A plain callable is still called at each step.
    w = vs.get_variable("w", shape=[1], initializer=vs.zeros_initializer())
    rates = iter([0.5, 0.25])
    opt = vs.train.GradientDescentOptimizer(lambda: next(rates))
    opt.apply_gradients([(np.ones(1), w)])
    opt.apply_gradients([(np.ones(1), w)])
    assert w.read()[0] == -0.75


def test_optimizer_names_name_the_slots(server):
    w = vs.get_variable("w", shape=[2], initializer=vs.ones_initializer())
    opt = vs.train.AdamOptimizer(0.1, name="MyAdam")
    opt.apply_gradients([(np.ones(2, np.float32), w)])
    assert names() == {"w", "w/MyAdam", "w/MyAdam_1", "beta1_power",
                       "beta2_power"}
    assert opt.get_slot_names() == ["m", "v"]
    assert opt.get_slot(w, "v").name == "w/MyAdam_1:0"
    assert opt.get_slot(w, "x") is None
    rms = vs.train.RMSPropOptimizer(0.1, centered=True, name="R")
    rms.apply_gradients([(np.ones(2, np.float32), w)])
    assert {"w/R", "w/R_1", "w/R_2"} <= names()
    assert rms.get_slot_names() == ["mg", "momentum", "rms"]
    np.testing.assert_allclose(rms.get_slot(w, "mg").read(), [0.1, 0.1])
    with pytest.raises(ValueError, match="Must specify the optimizer name"):
        vs.train.GradientDescentOptimizer(0.1, name="")


def test_adam_beta_powers_are_tensorflows_non_slot_variables(server):
    a = vs.get_variable("a", shape=[2], initializer=vs.ones_initializer())
    emb = vs.get_variable("emb", shape=[4, 2], initializer=vs.ones_initializer())
    opt = vs.train.AdamOptimizer(0.1)
    assert opt._get_beta_accumulators() is None
    for _ in range(3):
        # A dense and a sparse variable: one advance per apply_gradients.
        opt.apply_gradients([(np.ones(2, np.float32), a),
                             (vs.IndexedSlices(np.ones([1, 2]), [1]), emb)])
    beta1, beta2 = opt._get_beta_accumulators()
    assert beta1.name == "beta1_power:0" and beta1.dtype == vs.float32
    assert beta1.read() == float32_power(0.9, 4)
    assert beta2.read() == float32_power(0.999, 4)
    # A second Adam of this process gets its own pair, as in a TF graph.
    other = vs.train.AdamOptimizer(0.1)
    other.apply_gradients([(np.ones(2, np.float32), a)])
    assert {"beta1_power_1", "beta2_power_1"} <= names()
    assert beta1.read() == float32_power(0.9, 4)
    # Named under the name scope, as TensorFlow's graph names them: a
    # re-entered variable scope opens a new one.
    for scope in ("model", "model_1"):
        with vs.variable_scope("model"):
            third = vs.train.AdamOptimizer(0.1)
            third.apply_gradients([(np.ones(2, np.float32), a)])
        assert third._get_beta_accumulators()[0].name == \
            scope + "/beta1_power:0"


def test_a_sparse_step_makes_slots_for_every_part(server):
    emb = vs.get_variable("emb", shape=[6, 2],
                          initializer=vs.zeros_initializer(),
                          partitioner=vs.fixed_size_partitioner(3))
    opt = vs.train.AdagradOptimizer(0.1)
    opt.apply_gradients([(vs.IndexedSlices(np.ones([1, 2]), [0]), emb)])
    assert {"emb/part_%d/Adagrad" % i for i in range(3)} <= names()
    np.testing.assert_array_equal(emb[1].read(), np.zeros([2, 2]))

    def versions():
        with vs.variable_scope("", reuse=True):
            return [part.version for part in vs.get_variable("emb")]
    before = versions()
    # Later steps touch only the parts they have rows for.
    opt.apply_gradients([(vs.IndexedSlices(np.ones([1, 2]), [0]), emb)])
    after = versions()
    assert after[0] == before[0] + 1 and after[1:] == before[1:]


def test_builtin_constraints_apply_on_the_server(server):
    with vs.variable_scope("s", constraint=vs.keras.constraints.non_neg()):
        pos = vs.get_variable("pos", shape=[3],
                              initializer=vs.zeros_initializer())
        kernel = vs.get_variable(
            "kernel", shape=[2, 2], initializer=vs.zeros_initializer(),
            constraint=vs.keras.constraints.MaxNorm(1.0, axis=0))
        emb = vs.get_variable("emb", shape=[3, 2],
                              initializer=vs.zeros_initializer(),
                              partitioner=vs.fixed_size_partitioner(2))
    assert pos.constraint == vs.keras.constraints.NonNeg()
    assert kernel.constraint == vs.keras.constraints.MaxNorm(1.0, axis=0)
    assert emb.constraint == vs.keras.constraints.NonNeg()
    opt = vs.train.GradientDescentOptimizer(1.0)
    opt.apply_gradients([(np.array([1, -2, 0.5], np.float32), pos),
                         (np.array([[-3, 0], [-4, 0]], np.float32), kernel),
                         (np.full([3, 2], 1, np.float32), emb)])
    # The step's own result (one atomic batch) is constrained: a concurrent
    # reader never sees [-1, 2, -0.5].
    np.testing.assert_array_equal(pos.read(), [0, 2, 0])
    np.testing.assert_allclose(kernel.read(), [[0.6, 0], [0.8, 0]],
                               rtol=1e-6)
    np.testing.assert_array_equal(emb.read(), np.zeros([3, 2]))
    with pytest.raises(RuntimeError, match="Cannot use a constraint function "
                                           "on a sparse variable."):
        opt.apply_gradients([(vs.IndexedSlices([[1.0, 1.0]], [0]), emb)])
    with pytest.raises(errors.InvalidArgumentError,
                       match="Constraint axis 1 is out of range for variable "
                             "bad of rank 1"):
        vs.get_variable("bad", shape=[2],
                        constraint=vs.keras.constraints.UnitNorm(axis=1))
    with pytest.raises(ValueError,
                       match="The `constraint` argument must be a callable."):
        vs.get_variable("bad", shape=[2], constraint="non_neg")
    assert vs.keras.constraints.get("non_neg") == \
        vs.keras.constraints.NonNeg()


def test_callable_constraints_apply_in_the_client(server):
    w = vs.get_variable("w", shape=[2], initializer=vs.zeros_initializer(),
                        constraint=lambda v: np.clip(v, -0.5, 0.5))
    vs.train.GradientDescentOptimizer(1.0).apply_gradients(
        [(np.array([2, -0.25], np.float32), w)])
    np.testing.assert_array_equal(w.read(), [-0.5, 0.25])
    assert callable(w.constraint)
    # The process keeps it, as a graph keeps it with its Python variable.
    vs.reset_default_graph()
    with vs.variable_scope("", reuse=True):
        assert vs.get_variable("w").constraint is None


def test_variable_and_custom_getters_take_constraints(server):
    v = vs.Variable(np.zeros(2, np.float32), name="v",
                    constraint=vs.keras.constraints.NonNeg())
    assert v.constraint == vs.keras.constraints.NonNeg()
    vs.train.GradientDescentOptimizer(1.0).apply_gradients(
        [(np.array([1, -1], np.float32), v)])
    np.testing.assert_array_equal(v.read(), [0, 1])
    with pytest.raises(ValueError,
                       match="The `constraint` argument must be a callable."):
        vs.Variable(np.zeros(2, np.float32), name="bad", constraint=3)
    assert "bad" not in names()
    # A getter that takes `constraint` gets the scope's, as in TensorFlow.
    seen = []

    def getter(getter, name, *args, constraint=None, **kwargs):
        seen.append(constraint)
        return getter(name, *args, constraint=constraint, **kwargs)
    with vs.variable_scope("s", custom_getter=getter,
                           constraint=vs.keras.constraints.NonNeg()):
        w = vs.get_variable("w", shape=[2])
    assert seen == [vs.keras.constraints.NonNeg()]
    assert w.constraint == vs.keras.constraints.NonNeg()


def test_schedules_and_beta_powers_across_shards(shards):
    """Variables on both shards, the global step and beta powers on theirs:
    every variable steps with the same rate and powers, which advance once
    per step."""
    connection = vs.connect(cluster=[s.address for s in shards])._connection()
    ws = [vs.get_variable("w%d" % i, shape=[1], dtype=vs.float64,
                          initializer=vs.ones_initializer())
          for i in range(8)]
    assert {connection.shard_of(w._shared_name) for w in ws} == {0, 1}
    step = vs.train.get_or_create_global_step()
    lr = vs.train.exponential_decay(0.1, step, 2, 0.5, staircase=True)
    opt = vs.train.AdamOptimizer(lr)
    for _ in range(3):
        opt.apply_gradients([(np.ones(1), w) for w in ws], global_step=step)
    beta1, beta2 = opt._get_beta_accumulators()
    assert beta1.read() == float32_power(0.9, 4)
    values = [w.read()[0] for w in ws]
    assert len(set(values)) == 1
    expected, m, v = 1.0, 0.0, 0.0
    b1p, b2p = np.float32(0.9), np.float32(0.999)
    for at in range(3):
        m, v = 0.9 * m + 0.1, 0.999 * v + 0.001
        alpha = (0.1 * 0.5 ** (at // 2) * math.sqrt(1 - float(b2p)) /
                 (1 - float(b1p)))
        expected -= alpha * m / (math.sqrt(v) + 1e-8)
        b1p, b2p = b1p * np.float32(0.9), b2p * np.float32(0.999)
    assert values[0] == pytest.approx(expected, rel=1e-12)


def test_custom_optimizer_names_are_refused_where_a_cluster_splits_slots(
        shards):
    connection = vs.connect(cluster=[s.address for s in shards])._connection()
    name = next("v%d" % i for i in range(100)
                if connection.shard_of("v%d/Mine" % i) !=
                connection.shard_of("v%d" % i))
    v = vs.get_variable(name, shape=[1], initializer=vs.zeros_initializer())
    with pytest.raises(ValueError) as e:
        vs.train.AdagradOptimizer(0.1, name="Mine").apply_gradients(
            [(np.ones(1, np.float32), v)])
    assert str(e.value) == (
        "Optimizer name 'Mine' would place slot %s/Mine on another shard "
        "than %s: on a cluster, use the default name 'Adagrad'" % (name, name))
    assert names() == {name}

"""The training data path from Python: batches, sparse rows, optimizers,
synchronous replicas, large tensors."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

import varscope as vs
from varscope import errors

from test_processes import HERE as WORKER_DIR
from test_processes import WORKER


def variable(name, shape, dtype=vs.float64, value=0.0, partitioner=None):
    with vs.variable_scope(vs.get_variable_scope(), reuse=vs.AUTO_REUSE):
        return vs.get_variable(name, shape=shape, dtype=dtype,
                               initializer=vs.constant_initializer(value),
                               partitioner=partitioner)


def names(scope=""):
    return {name for name, _ in vs.list_variables(scope)}


class TestBatches:

    def test_batch_update_applies_in_order_and_batch_read_sees_it(
            self, server):
        w, b = variable("w", [3]), variable("b", [])
        with vs.batch_update() as batch:
            batch.assign(w, [1, 2, 3])
            batch.assign_add(w, [10, 10, 10])
            batch.assign_sub(b, 0.5)
            assert len(batch) == 3
        values = vs.batch_read([w, b])
        np.testing.assert_array_equal(values["w"], [11, 12, 13])
        assert values["b"] == -0.5
        assert w.version == 2  # one batch makes one new version; seen
        assert set(vs.batch_read(scope="")) == {"w", "b"}

    def test_failing_batch_changes_nothing(self, server):
        w, emb = variable("w", [2]), variable("emb", [4, 2])
        batch = vs.batch_update()
        batch.assign(w, [5, 5])
        batch.scatter_add(emb, vs.IndexedSlices([[1, 1]], [4]))
        with pytest.raises(errors.InvalidArgumentError) as e:
            batch.apply()
        assert str(e.value) == ("Index 4 at position 0 is out of range for "
                                "variable emb with 4 rows")
        np.testing.assert_array_equal(w.read(), [0, 0])
        with pytest.raises(errors.AbortedError,
                           match="is at version 1, not the expected version 7"):
            with vs.batch_update() as batch:
                batch.assign(emb, np.ones([4, 2]))
                batch.assign(w, [1, 1], expected_version=7)
        np.testing.assert_array_equal(emb.read(), np.zeros([4, 2]))
        # An exception inside the block applies nothing.
        with pytest.raises(KeyError):
            with vs.batch_update() as batch:
                batch.assign(w, [9, 9])
                raise KeyError("boom")
        np.testing.assert_array_equal(w.read(), [0, 0])

    def test_conditional_writes(self, server):
        w = variable("w", [2])
        w.assign([1, 1], expected_version=1)
        assert w.version == 2
        with pytest.raises(errors.AbortedError) as e:
            w.assign_add([5, 5], expected_version=1)
        assert str(e.value) == ("Variable w is at version 2, not the "
                                "expected version 1")
        np.testing.assert_array_equal(w.read(), [1, 1])

    def test_return_values(self, server):
        w = variable("w", [2], value=1.0)
        batch = vs.batch_update(return_values=True)
        batch.assign_add(w, [1, 2]).assign_add(w, [1, 1])
        # Per update, the variable's value after the whole batch.
        after_first, after_second = batch.apply()
        np.testing.assert_array_equal(after_first, [3, 4])
        np.testing.assert_array_equal(after_second, [3, 4])

    def test_batch_read_of_partitioned_and_missing(self, server):
        whole = np.arange(12, dtype=np.float32).reshape(6, 2)
        p = variable("p", [6, 2], dtype=vs.float32,
                     partitioner=vs.fixed_size_partitioner(3))
        p.assign(whole)
        np.testing.assert_array_equal(vs.batch_read([p, "p/part_1"])["p"],
                                      whole)
        with pytest.raises(errors.NotFoundError,
                           match="Variable nope does not exist"):
            vs.batch_read(["nope"])
        with pytest.raises(ValueError, match="either variables or scope"):
            vs.batch_read()

    def test_concurrent_readers_see_whole_batches(self, server):
        a, b = variable("a", [1000]), variable("b", [1000])
        stop = threading.Event()

        def write():
            for i in range(1, 200):
                with vs.batch_update() as batch:
                    batch.assign(a, np.full(1000, i))
                    batch.assign(b, np.full(1000, -i))
            stop.set()

        writer = threading.Thread(target=write)
        writer.start()
        reads = 0
        while not stop.is_set() or reads == 0:
            values = vs.batch_read([a, b])
            assert len(set(values["a"])) == 1
            np.testing.assert_array_equal(values["a"], -values["b"])
            reads += 1
        writer.join()


class TestSparse:

    def test_gather_and_scatter(self, server):
        emb = variable("emb", [5, 2])
        emb.scatter_update(vs.IndexedSlices(
            np.arange(10.0).reshape(5, 2), np.arange(5)))
        np.testing.assert_array_equal(emb.sparse_read([4, 0, 4]),
                                      [[8, 9], [0, 1], [8, 9]])
        # Duplicates add up; scatter_update keeps the last.
        emb.scatter_add(vs.IndexedSlices([[1, 1], [2, 2]], [1, 1]))
        emb.scatter_sub(vs.IndexedSlices([[1, 1]], np.array([0], np.int32)))
        emb.scatter_update(vs.IndexedSlices([[7, 7], [8, 8]], [3, 3]))
        np.testing.assert_array_equal(
            emb.read(), [[-1, 0], [5, 6], [4, 5], [8, 8], [8, 9]])

    def test_bad_indices_change_nothing(self, server):
        emb = variable("emb", [3, 2])
        with pytest.raises(errors.InvalidArgumentError) as e:
            emb.scatter_add(vs.IndexedSlices([[1, 1], [1, 1]], [0, -1]))
        assert str(e.value) == ("Index -1 at position 1 is out of range for "
                                "variable emb with 3 rows")
        with pytest.raises(errors.InvalidArgumentError,
                           match="Index 3 at position 0 is out of range"):
            emb.sparse_read([3])
        with pytest.raises(TypeError, match="must be integers"):
            emb.sparse_read([0.5])
        with pytest.raises(errors.InvalidArgumentError,
                           match="must be a 1-D int32 or int64 tensor"):
            emb.sparse_read([[0]])
        with pytest.raises(TypeError, match="Expected IndexedSlices"):
            emb.scatter_add([[1, 1]])
        np.testing.assert_array_equal(emb.read(), np.zeros([3, 2]))

    def test_partitioned_rows_go_to_their_parts(self, server):
        emb = variable("emb", [7, 2], partitioner=vs.fixed_size_partitioner(3))
        assert [part.shape[0] for part in emb] == [3, 2, 2]
        emb.scatter_add(vs.IndexedSlices([[1, 1], [2, 2], [3, 3], [4, 4]],
                                         [6, 0, 3, 6]))
        want = np.zeros([7, 2])
        want[0], want[3], want[6] = 2, 3, 5
        np.testing.assert_array_equal(emb.read(), want)
        np.testing.assert_array_equal(emb.sparse_read([6, 3, 0, 1]),
                                      want[[6, 3, 0, 1]])
        with pytest.raises(errors.InvalidArgumentError) as e:
            emb.scatter_add(vs.IndexedSlices([[1, 1], [1, 1]], [0, 7]))
        assert str(e.value) == ("Index 7 at position 1 is out of range for "
                                "variable emb with 7 rows")
        np.testing.assert_array_equal(emb.read(), want)

    def test_partitioned_on_another_axis(self, server):
        emb = variable("emb", [2, 6],
                       partitioner=vs.fixed_size_partitioner(2, axis=1))
        emb.scatter_add(vs.IndexedSlices(np.arange(6.0).reshape(1, 6), [1]))
        np.testing.assert_array_equal(emb.sparse_read([1, 0]),
                                      [np.arange(6.0), np.zeros(6)])


def reference_steps(kind, params, lr, grads, var):
    """TensorFlow's update rules in float64 (training_ops.cc)."""
    s = [np.zeros_like(var) for _ in range(3)]
    if kind in ("adagrad", "ftrl"):
        s[0] += params.get("initial_accumulator_value", 0.1)
    if kind == "rmsprop":
        s[0] += 1.0  # TensorFlow starts the mean square at one
    # Adam's beta powers are float32 variables, advanced in float32.
    b1p, b2p = np.float32(0.9), np.float32(0.999)
    for g in grads:
        if kind == "sgd":
            var = var - lr * g
        elif kind == "momentum":
            s[0] = params["momentum"] * s[0] + g
            step = (g + params["momentum"] * s[0]
                    if params.get("use_nesterov") else s[0])
            var = var - lr * step
        elif kind == "adagrad":
            s[0] += g * g
            var = var - lr * g / np.sqrt(s[0])
        elif kind == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-8
            s[0] = b1 * s[0] + (1 - b1) * g
            s[1] = b2 * s[1] + (1 - b2) * g * g
            alpha = lr * np.sqrt(1 - np.float64(b2p)) / (1 - np.float64(b1p))
            var = var - alpha * s[0] / (np.sqrt(s[1]) + eps)
            b1p, b2p = b1p * np.float32(b1), b2p * np.float32(b2)
        elif kind == "ftrl":
            new = s[0] + g * g
            s[1] += g - (np.sqrt(new) - np.sqrt(s[0])) / lr * var
            var = np.where(np.abs(s[1]) > 0, -s[1] / (np.sqrt(new) / lr), 0)
            s[0] = new
        elif kind == "rmsprop":
            decay, mom, eps = 0.9, params["momentum"], 1e-10
            s[0] = decay * s[0] + (1 - decay) * g * g
            s[1] = mom * s[1] + lr * g / np.sqrt(s[0] + eps)
            var = var - s[1]
    return var


OPTIMIZERS = [
    ("sgd", lambda: vs.train.GradientDescentOptimizer(0.1), {}, []),
    ("momentum", lambda: vs.train.MomentumOptimizer(0.1, 0.9),
     {"momentum": 0.9}, ["w/Momentum"]),
    ("momentum", lambda: vs.train.MomentumOptimizer(0.1, 0.9,
                                                    use_nesterov=True),
     {"momentum": 0.9, "use_nesterov": True}, ["w/Momentum"]),
    ("adagrad", lambda: vs.train.AdagradOptimizer(0.1), {}, ["w/Adagrad"]),
    ("adam", lambda: vs.train.AdamOptimizer(0.01), {},
     ["w/Adam", "w/Adam_1", "beta1_power", "beta2_power"]),
    ("rmsprop", lambda: vs.train.RMSPropOptimizer(0.01, momentum=0.5),
     {"momentum": 0.5}, ["w/RMSProp", "w/RMSProp_1"]),
    ("ftrl", lambda: vs.train.FtrlOptimizer(0.1), {}, ["w/Ftrl", "w/Ftrl_1"]),
]


class TestOptimizers:

    @pytest.mark.parametrize("kind,make,params,slots", OPTIMIZERS)
    def test_matches_reference(self, server, kind, make, params, slots):
        w = variable("w", [4], value=1.0)
        opt = make()
        grads = [np.array([0.5, -1.0, 2.0, 0.25]) * (k + 1) for k in range(4)]
        for g in grads:
            opt.apply_gradients([(g, w)])
        np.testing.assert_allclose(
            w.read(), reference_steps(kind, params, opt._learning_rate,
                                      grads, np.ones(4)),
            rtol=1e-12, atol=1e-12)
        assert names() == {"w", *slots}

    def test_sparse_adagrad_sums_duplicates_and_steps_global_step(
            self, server):
        emb = variable("emb", [4, 2], value=1.0)
        step = vs.get_or_create_global_step()
        opt = vs.train.AdagradOptimizer(0.5, initial_accumulator_value=1.0)
        opt.apply_gradients(
            [(vs.IndexedSlices([[1.0, 2.0], [1.0, 2.0]], [2, 2]), emb)],
            global_step=step)
        g = np.array([2.0, 4.0])
        want = np.ones([4, 2])
        want[2] = 1 - 0.5 * g / np.sqrt(1 + g * g)
        np.testing.assert_allclose(emb.read(), want, rtol=1e-12)
        accumulator = np.ones([4, 2])
        accumulator[2] += g * g
        np.testing.assert_allclose(vs.batch_read(["emb/Adagrad"])["emb/Adagrad"],
                                   accumulator)
        assert vs.global_step() == 1

    def test_partitioned_variables_train_per_part(self, server):
        w = variable("w", [4, 1], partitioner=vs.fixed_size_partitioner(2))
        vs.train.MomentumOptimizer(1.0, 0.5).apply_gradients(
            [(np.array([[1.0], [2.0], [3.0], [4.0]]), w), (None, w)])
        np.testing.assert_array_equal(w.read(), [[-1], [-2], [-3], [-4]])
        assert {"w/part_0/Momentum", "w/part_1/Momentum"} <= names()

    def test_bad_gradients(self, server):
        w, flags = variable("w", [2]), variable("flags", [2], dtype=vs.int32,
                                                 value=0)
        opt = vs.train.GradientDescentOptimizer(0.1)
        with pytest.raises(errors.InvalidArgumentError,
                           match=r"Cannot apply a gradient of shape \(3,\) "
                                 r"to variable w of shape \(2,\)"):
            opt.apply_gradients([(np.ones(3), w)])
        with pytest.raises(errors.InvalidArgumentError,
                           match="Optimizers train floating-point variables; "
                                 "flags is int32"):
            opt.apply_gradients([(np.ones(2), w),
                                 (np.ones(2, np.int32), flags)])
        with pytest.raises(ValueError, match="No gradients provided"):
            opt.apply_gradients([(None, w)])
        with pytest.raises(errors.InvalidArgumentError,
                           match="learning_rate"):
            vs.train.GradientDescentOptimizer(-1.0).apply_gradients(
                [(np.ones(2), w)])
        np.testing.assert_array_equal(w.read(), [0, 0])


def sync_worker(server, env, name, replicas, steps, grad, first):
    return subprocess.Popen(
        [sys.executable, WORKER, "sync", server.address, name, str(replicas),
         str(steps), str(grad), str(first)],
        env=env, stdout=subprocess.PIPE, text=True)


def replies(worker):
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0
    return [json.loads(line) for line in out.splitlines()]


class TestSyncReplicas:

    def test_four_workers_and_a_straggler(self, server, child_env):
        w = variable("w", [3])
        vs.get_or_create_global_step()
        # Three of four replicas aggregate; three workers send gradients
        # 1, 2 and 3 for step 0 and wait for step 1.
        workers = [sync_worker(server, child_env, "w", 3, 1, g, 0)
                   for g in (1, 2, 3)]
        outcomes = sorted(replies(worker)[0]["outcome"] for worker in workers)
        assert outcomes == ["accumulated", "accumulated", "applied"]
        np.testing.assert_array_equal(w.read(), [-2, -2, -2])
        assert vs.global_step() == 1
        # The fourth, late with its step-0 gradient, is dropped.
        (late,) = replies(sync_worker(server, child_env, "w", 3, 1, 100, 0))
        assert late == {"outcome": "stale", "global_step": 1,
                        "accumulated": 0, "stale_dropped": 1}
        np.testing.assert_array_equal(w.read(), [-2, -2, -2])

    def test_workers_advance_in_lockstep(self, server, child_env):
        w = variable("w", [2])
        vs.get_or_create_global_step()
        workers = [sync_worker(server, child_env, "w", 4, 5, 1, -1)
                   for _ in range(4)]
        for worker in workers:
            steps = [reply["global_step"] for reply in replies(worker)]
            assert len(steps) == 5
        assert vs.global_step() == 5
        np.testing.assert_array_equal(w.read(), [-5, -5])

    def test_wait_for_step(self, server):
        w = variable("w", [2])
        opt = vs.train.SyncReplicasOptimizer(
            vs.train.GradientDescentOptimizer(1.0), replicas_to_aggregate=1)
        with pytest.raises(errors.DeadlineExceededError):
            opt.wait_for_step(1, timeout=0.2)
        reply = opt.apply_gradients([(np.ones(2), w)], local_step=0)
        assert reply["outcome"] == "applied"
        assert opt.wait_for_step(1, timeout=120) == 1
        with pytest.raises(ValueError, match="local_step"):
            opt.apply_gradients([(np.ones(2), w)])


def test_large_tensors_move_by_streams(server):
    # Above the client's 64 MiB stream threshold: assign and assign_add go
    # by WriteStream (unless the value is to come back, read_value=True).
    big = variable("big", [20 << 20], dtype=vs.float32)
    value = np.arange(20 << 20, dtype=np.float32)
    big.assign(value, read_value=False)
    big.assign_add(np.ones(20 << 20, dtype=np.float32), read_value=False)
    np.testing.assert_array_equal(big.read(), value + 1)


def test_embedding_example_reaches_its_accuracy(server, child_env):
    example = (WORKER_DIR.parents[1] / "examples" / "python" /
               "embedding_adagrad.py")
    run = subprocess.run([sys.executable, str(example), server.address],
                         env=child_env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "held-out accuracy" in run.stdout
    assert "global step +1000" in run.stdout

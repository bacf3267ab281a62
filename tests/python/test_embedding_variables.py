"""Embedding variables through the Python API (DeepRec's names):
get_embedding_variable in variable scopes, sparse_read and
nn.embedding_lookup with any int64 keys, admission, eviction, every sparse
optimizer, size/export/import, and a cluster spreading keys over shards."""

import math
import time

import numpy as np
import pytest

import varscope as vs
from varscope import errors

DIM = 4
HUGE = [0, -1, 2**63 - 1, -2**63, 123456789012345]


def make(name="emb", filter_freq=0, steps_to_live=None, **kwargs):
    option = vs.EmbeddingVariableOption(
        filter_option=vs.CounterFilter(filter_freq=filter_freq),
        evict_option=vs.GlobalStepEvict(steps_to_live=steps_to_live))
    return vs.get_embedding_variable(
        name, embedding_dim=DIM,
        initializer=vs.random_uniform_initializer(-1, 1, seed=3),
        ev_option=option, **kwargs)


@pytest.mark.usefixtures("server")
class TestSingleServer:

    def test_scopes_reuse_and_names(self):
        with vs.variable_scope("model"):
            ev = make()
        assert ev.name == "model/emb:0"
        assert ev.shape.as_list() == [None, DIM]
        assert ev.key_dtype == vs.int64 and ev.dtype == vs.float32
        with vs.variable_scope("model"):
            with pytest.raises(ValueError, match="already exists"):
                make()
        with vs.variable_scope("model", reuse=True):
            assert make() == ev
            with pytest.raises(ValueError, match="does not exist"):
                make("other")
        with vs.variable_scope("model", reuse=vs.AUTO_REUSE):
            assert make() == ev
            with pytest.raises(ValueError,
                               match="specified embedding_dim 8 and found "
                                     "embedding_dim 4"):
                vs.get_embedding_variable("emb", embedding_dim=8)
            with pytest.raises(ValueError,
                               match="is an embedding variable; a dense "
                                     "variable cannot share its name"):
                vs.get_variable("emb", shape=[2])
        assert ev in vs.global_variables()
        assert ev in vs.trainable_variables()

    def test_lookup_is_deterministic_per_key(self, server):
        ev = make()
        keys = np.array(HUGE, np.int64)
        rows = ev.sparse_read(keys)
        assert rows.shape == (len(HUGE), DIM)
        assert np.all((rows >= -1) & (rows < 1))
        np.testing.assert_array_equal(vs.nn.embedding_lookup(ev, keys), rows)
        # Another variable with the same seed: the same rows.
        np.testing.assert_array_equal(make("twin").read(keys), rows)
        # Any shape of ids.
        assert ev.sparse_read(keys.reshape(5, 1)).shape == (5, 1, DIM)

    def test_counter_filter(self):
        ev = make(filter_freq=2)
        first = ev.sparse_read([7])
        assert ev.size() == 0
        ev.sparse_read([7])
        assert ev.size() == 1
        np.testing.assert_array_equal(ev.read([7]), first)
        stats = ev.stats(hottest=1)
        assert stats["admitted"] == 1 and stats["filtered"] == 1
        assert stats["hottest"] == [(7, 2)]

    def test_global_step_evict(self):
        ev = make(steps_to_live=1)
        gs = vs.train.get_or_create_global_step()
        opt = vs.train.GradientDescentOptimizer(1.0)
        grad = np.ones((1, DIM), np.float32)
        opt.apply_gradients([(vs.IndexedSlices(grad, [1]), ev)],
                            global_step=gs)
        for _ in range(3):
            opt.apply_gradients([(vs.IndexedSlices(grad, [2]), ev)],
                                global_step=gs)
        # Eviction runs in the background: poll, with a generous bound.
        deadline = time.monotonic() + 120
        while ev.size() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        keys, _, _, _ = ev.export()
        assert list(keys) == [2]

    @pytest.mark.parametrize("optimizer", [
        lambda: vs.train.GradientDescentOptimizer(0.1),
        lambda: vs.train.MomentumOptimizer(0.1, 0.9),
        lambda: vs.train.AdagradOptimizer(0.1),
        lambda: vs.train.AdamOptimizer(0.1),
        lambda: vs.train.RMSPropOptimizer(0.1),
        lambda: vs.train.FtrlOptimizer(0.1),
    ])
    def test_every_sparse_optimizer_matches_a_dense_variable(self,
                                                             optimizer):
        ev = make()
        before = ev.read([5, -5])
        w = vs.get_variable("w", shape=[2, DIM],
                            initializer=vs.zeros_initializer())
        w.assign(before)
        opt = optimizer()
        grads = np.arange(2 * DIM, dtype=np.float32).reshape(2, DIM) - 3
        for _ in range(3):
            opt.apply_gradients([(vs.IndexedSlices(grads, [5, -5]), ev),
                                 (vs.IndexedSlices(grads, [0, 1]), w)])
        after = ev.read([5, -5])
        assert not np.allclose(after, before)
        np.testing.assert_allclose(after, w.read(), rtol=1e-6, atol=1e-6)

    def test_adagrad_matches_the_formula(self):
        ev = make()
        before = ev.read([3]).astype(np.float64)
        opt = vs.train.AdagradOptimizer(0.5, initial_accumulator_value=0.1)
        opt.apply_gradients([(vs.IndexedSlices(
            np.full((2, DIM), 2, np.float32), [3, 3]), ev)])
        expected = before - 0.5 * 4 / math.sqrt(0.1 + 16)
        np.testing.assert_allclose(ev.read([3]), expected, rtol=1e-5)

    def test_bad_input(self):
        ev = make()
        with pytest.raises(TypeError, match="must be integers"):
            ev.sparse_read([1.5])
        opt = vs.train.GradientDescentOptimizer(1.0)
        with pytest.raises(errors.InvalidArgumentError,
                           match="NaN or an infinity"):
            opt.apply_gradients([(vs.IndexedSlices(
                np.full((1, DIM), np.nan, np.float32), [1]), ev)])
        with pytest.raises(errors.InvalidArgumentError,
                           match=r"must be float32 of shape \(1, 4\)"):
            opt.apply_gradients([(vs.IndexedSlices(
                np.ones((1, 3), np.float32), [1]), ev)])
        assert ev.size() == 0
        with pytest.raises(TypeError, match="must be IndexedSlices"):
            opt.apply_gradients([(np.ones((1, DIM), np.float32), ev)])

    def test_export_import_round_trip(self):
        a, b = make("a"), make("b")
        keys = np.array(HUGE, np.int64)
        vs.train.AdagradOptimizer(0.1).apply_gradients(
            [(vs.IndexedSlices(np.ones((5, DIM), np.float32), keys), a)])
        exported = a.export()
        assert sorted(exported[0]) == sorted(HUGE)
        assert b.import_(*exported) == 5
        for x, y in zip(b.export(), exported):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(b.read(keys), a.read(keys))


def test_keys_spread_over_the_shards(shards):
    ev = make()
    keys = np.arange(-500, 500, dtype=np.int64) * 7919
    rows = ev.sparse_read(keys)
    vs.train.AdagradOptimizer(0.1).apply_gradients(
        [(vs.IndexedSlices(np.ones((len(keys), DIM), np.float32), keys), ev)])
    assert ev.size() == len(keys)
    after = ev.read(keys)
    assert np.all(after < rows)
    # Each shard holds a share of the keys.
    one = [vs._varscope.Client(s.address, timeout=60, retry_timeout=60,
                               max_attempts=None, tls_root_certs="",
                               auth_token="") for s in shards]
    sizes = [c.embedding_stat("emb")["size"] for c in one]
    assert sum(sizes) == len(keys) and min(sizes) > 0
    exported = ev.export()
    assert sorted(exported[0]) == sorted(keys)
    assert vs.list_variables() == [("emb", [0, DIM])]  # once, not per shard
    assert vs.delete_variable("emb") == 1
    for c in one:
        with pytest.raises(errors.NotFoundError):
            c.embedding_stat("emb")

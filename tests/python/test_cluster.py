"""A cluster of two shards from Python: vs.connect(cluster=[...])."""

import numpy as np

import varscope as vs



def shard_names(server):
    with vs.Client(server.address, timeout=10).as_default():
        return {name for name, _ in vs.list_variables()}


def test_variables_spread_over_shards_and_work_as_one_store(shards):
    with vs.variable_scope("model", reuse=vs.AUTO_REUSE):
        ws = [vs.get_variable("w%d" % i, shape=[2],
                              initializer=vs.zeros_initializer())
              for i in range(8)]
        emb = vs.get_variable("emb", shape=[6, 2], dtype=vs.float64,
                              initializer=vs.zeros_initializer(),
                              partitioner=vs.fixed_size_partitioner(3))
    step = vs.get_or_create_global_step()
    held = [shard_names(s) for s in shards]
    assert held[0] and held[1] and not held[0] & held[1]
    # A partitioned variable's parts live together.
    parts = {"model/emb/part_%d" % i for i in range(3)}
    assert parts <= held[0] or parts <= held[1]

    # One batch across shards, one optimizer step across shards.
    with vs.batch_update() as batch:
        for i, w in enumerate(ws):
            batch.assign(w, [i, i])
    vs.train.AdagradOptimizer(0.5).apply_gradients(
        [(vs.IndexedSlices([[1.0, 1.0]], [4]), emb),
         (np.ones(2, np.float32), ws[0])], global_step=step)
    values = vs.batch_read(scope="model")
    assert sorted(values) == sorted(
        ["model/w%d" % i for i in range(8)] +
        ["model/emb/part_%d" % i for i in range(3)] +
        ["model/emb/part_2/Adagrad", "model/w0/Adagrad"])
    np.testing.assert_array_equal(values["model/w5"], [5, 5])
    assert vs.global_step() == 1
    assert emb.sparse_read([4])[0, 0] < 0

    # Listings merge the shards, in name order.
    names = [name for name, _ in vs.list_variables("model", recursive=False)]
    assert names == sorted(names)
    assert "model/w7" in names
    assert vs.delete_variable("model", recursive=True) == 13
    assert vs.list_variables("model") == []

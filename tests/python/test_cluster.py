"""A cluster of two shards from Python: vs.connect(cluster=[...])."""

import json
import os

import numpy as np
import pytest

import varscope as vs
from varscope import errors

from conftest import Server
from conftest import shard_list


def mismatch(address, index, listed_as, order, cluster="test-cluster"):
    return ("Shard list mismatch: %s is shard %d of 2 of cluster %s (shards "
            "%s), but this client lists it as shard %d of 2. Give every "
            "worker the shards in the cluster's order: %s" %
            (address, index, cluster, ",".join(order), listed_as,
             ",".join(order)))


def test_shards_listed_in_another_order_are_refused(shards, monkeypatch):
    swapped = [shards[1].address, shards[0].address]
    expected = mismatch(shards[1].address, 1, 0, shard_list(2))
    vs.connect(cluster=swapped, timeout=120)
    with pytest.raises(errors.FailedPreconditionError) as e:
        vs.get_variable("w", shape=[1])
    assert str(e.value) == expected
    assert e.value.error_code == errors.FAILED_PRECONDITION
    with pytest.raises(errors.FailedPreconditionError) as e:
        vs.get_or_create_global_step()
    assert str(e.value) == expected
    with pytest.raises(errors.FailedPreconditionError) as e:
        vs.Client(",".join(swapped)).check_cluster()
    assert str(e.value) == expected
    # A worker given the cluster by TF_CONFIG is checked alike.
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"ps": swapped, "worker": ["w:1"]},
         "task": {"type": "worker", "index": 0}}))
    monkeypatch.delenv("VARSCOPE_SERVER", raising=False)
    vs.connect(timeout=120)
    with pytest.raises(errors.FailedPreconditionError) as e:
        vs.list_variables()
    assert str(e.value) == expected
    # Nothing was created; the cluster's order works.
    client = vs.connect(cluster=[s.address for s in shards], timeout=120)
    client.check_cluster()
    assert vs.list_variables() == []
    # One address reaches one shard whatever its place.
    with vs.Client(shards[1].address).as_default():
        assert vs.list_variables() == []


def test_a_ps_task_of_tf_config_is_its_shard(tmp_path):
    # The servers' TF_CONFIG names them as a deployment would; the worker
    # reaches them at their test ports.
    ps = ["ps0.example:2222", "ps1.example:2222"]
    servers = []
    for i in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"ps": ps, "worker": ["w0:2222"]},
             "task": {"type": "ps", "index": i}}))
        servers.append(Server(tmp_path / ("ps%d" % i), env=env))
    try:
        with pytest.raises(errors.FailedPreconditionError) as e:
            vs.Client("%s,%s" % (servers[1].address, servers[0].address),
                      timeout=120).check_cluster()
        cluster_id = str(e.value).split(" of cluster ")[1].split(" ")[0]
        assert str(e.value) == mismatch(servers[1].address, 1, 0, ps,
                                        cluster=cluster_id)
        assert len(cluster_id) == 16
        with vs.Client("%s,%s" % (servers[0].address, servers[1].address),
                       timeout=120).as_default():
            vs.get_variable("w", shape=[1])
            assert vs.list_variables() == [("w", [1])]
    finally:
        for s in servers:
            s.stop()


def shard_names(server):
    with vs.Client(server.address, timeout=120).as_default():
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
    # A partitioned variable's parts spread from the shard of part 0.
    home = 0 if "model/emb/part_0" in held[0] else 1
    assert {"model/emb/part_0", "model/emb/part_2"} <= held[home]
    assert "model/emb/part_1" in held[1 - home]

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
        # Slots for every part, as TensorFlow makes them.
        ["model/emb/part_%d/Adagrad" % i for i in range(3)] +
        ["model/w0/Adagrad"])
    np.testing.assert_array_equal(values["model/w5"], [5, 5])
    # Each slot lives with its part.
    assert "model/emb/part_1/Adagrad" in shard_names(shards[1 - home])
    assert "model/emb/part_2/Adagrad" in shard_names(shards[home])
    assert vs.global_step() == 1
    assert emb.sparse_read([4])[0, 0] < 0

    # Listings merge the shards, in name order.
    names = [name for name, _ in vs.list_variables("model", recursive=False)]
    assert names == sorted(names)
    assert "model/w7" in names
    assert vs.delete_variable("model", recursive=True) == 15
    assert vs.list_variables("model") == []


def test_sync_replicas_span_the_shards(shards):
    # The global step on one shard, w on the other, emb's parts on both.
    connection = vs.client.default_client()._connection()
    home = connection.shard_of("global_step")
    name = next(n for n in ("w%d" % i for i in range(100))
                if connection.shard_of(n) != home)
    w = vs.get_variable(name, shape=[2], dtype=vs.float64,
                        initializer=vs.zeros_initializer())
    emb = vs.get_variable("emb", shape=[8, 2], dtype=vs.float64,
                          initializer=vs.zeros_initializer(),
                          partitioner=vs.fixed_size_partitioner(2))
    assert {connection.shard_of(p._shared_name) for p in emb} == {0, 1}
    vs.get_or_create_global_step()
    sync = vs.train.SyncReplicasOptimizer(
        vs.train.GradientDescentOptimizer(1.0), replicas_to_aggregate=2)
    # Two workers' gradients for step 0; their sparse rows are on different
    # parts (so on different shards).
    first = sync.apply_gradients(
        [(np.array([1.0, 1.0]), w),
         (vs.IndexedSlices(np.array([[2.0, 2.0]]), np.array([0])), emb)],
        local_step=0)
    assert first["outcome"] == "accumulated"
    second = sync.apply_gradients(
        [(np.array([3.0, 3.0]), w),
         (vs.IndexedSlices(np.array([[4.0, 4.0]]), np.array([5])), emb)],
        local_step=0)
    assert second == {"outcome": "applied", "global_step": 1,
                      "accumulated": 0, "stale_dropped": 0}
    assert sync.wait_for_step(1, timeout=120) == 1
    np.testing.assert_array_equal(w.read(), [-2, -2])
    expected = np.zeros([8, 2])
    expected[0] = -2
    expected[5] = -4
    np.testing.assert_array_equal(emb.read(), expected)
    late = sync.apply_gradients([(np.array([9.0, 9.0]), w)], local_step=0)
    assert late["outcome"] == "stale"
    np.testing.assert_array_equal(w.read(), [-2, -2])

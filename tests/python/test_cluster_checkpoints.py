"""Saver on a cluster while workers train: one consistent step."""

import subprocess
import sys

import varscope as vs
from varscope import client as client_lib
from conftest import Server, shard_flags, _UNUSED_ADDRESS
from test_processes import WORKER


def names_on_each_shard(connection, count):
    """A name on each shard of `count`, the last being global_step's."""
    step_shard = connection.shard_of("global_step")
    names = {step_shard: "global_step"}
    i = 0
    while len(names) < count:
        names.setdefault(connection.shard_of("v%d" % i), "v%d" % i)
        i += 1
    return [names[s] for s in sorted(names) if s != step_shard] + [
        "global_step"]


def test_saver_saves_one_step_of_a_training_cluster(tmp_path, child_env):
    servers = [Server(tmp_path / ("shard%d" % i), *shard_flags(i, 3))
               for i in range(3)]
    address = ",".join(s.address for s in servers)
    workers = []
    try:
        vs.reset_default_graph()
        vs.connect(address, timeout=120)
        names = names_on_each_shard(client_lib.default_client()._connection(), 3)
        with vs.variable_scope(vs.get_variable_scope(), reuse=vs.AUTO_REUSE):
            counters = [vs.get_variable(n, shape=[], dtype=vs.int64,
                                        initializer=vs.zeros_initializer())
                        for n in names]
        # Every step of both workers adds 1 to the three counters, one
        # batch per shard.
        workers = [subprocess.Popen(
            [sys.executable, WORKER, "steps", address, *names], env=child_env,
            stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for worker in workers:
            assert int(worker.stdout.readline()) >= 1
        saver = vs.train.Saver(max_to_keep=None)
        saved = []
        prefixes = []
        for _ in range(4):
            prefix = saver.save(None, str(tmp_path / "model.ckpt"),
                                global_step=counters[-1])
            reader = vs.train.load_checkpoint(prefix)
            values = [int(reader.get_tensor(n)) for n in names]
            assert values == [values[0]] * 3, values
            assert prefix.endswith("-%d" % values[0])
            saved.append(values[0])
            prefixes.append(prefix)
        assert saved == sorted(saved) and saved[0] >= 2
        # A restore while they train lands at one step too: a step between
        # two shards' assignments would leave the counters apart for good,
        # which the next save (at one cut) would show.
        for prefix in prefixes[:3]:
            saver.restore(None, prefix)
            reader = vs.train.load_checkpoint(saver.save(
                None, str(tmp_path / "after.ckpt"), global_step=counters[-1]))
            values = [int(reader.get_tensor(n)) for n in names]
            assert values == [values[0]] * 3, values
        for worker in workers:
            assert worker.poll() is None  # still training
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
        vs.reset_default_graph()
        vs.connect(_UNUSED_ADDRESS)
        for s in servers:
            s.stop()

"""Many workers: concurrent updates and creation from several processes, a
killed worker, threads overlapping in RPCs, and the example program."""

import json
import multiprocessing
import pathlib
import socket
import subprocess
import sys
import threading

import numpy as np

import varscope as vs
from varscope import errors

HERE = pathlib.Path(__file__).resolve().parent
WORKER = str(HERE / "worker.py")
EXAMPLE = str(HERE.parents[1] / "examples" / "python" /
              "estimator_linear_regression.py")


def start_worker(server, env, *args):
    return subprocess.Popen(
        [sys.executable, WORKER, args[0], server.address, *args[1:]],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def finish(worker):
    out, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0
    return out


def counter(name):
    with vs.variable_scope(vs.get_variable_scope(), reuse=True):
        return vs.get_variable(name, shape=[], dtype=vs.int64)


def test_concurrent_increments_are_exact(server, child_env):
    workers = [start_worker(server, child_env, "increment", "count", "200")
               for _ in range(4)]
    for w in workers:
        assert finish(w) == "done\n"
    assert counter("count").read() == 800
    assert counter("count").version == 801


def test_creation_race_creates_once(server, child_env):
    workers = [start_worker(server, child_env, "race", "raced")
               for _ in range(6)]
    for w in workers:
        assert w.stdout.readline() == "ready\n"
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    results = [json.loads(finish(w)) for w in workers]
    assert sum(r["created"] for r in results) == 1
    for r in results[1:]:
        assert r["value"] == results[0]["value"]
    assert len(vs.list_variables()) == 1


def test_killed_worker_leaves_server_and_others_unaffected(server, child_env):
    victim = start_worker(server, child_env, "forever", "victim")
    seen = [int(victim.stdout.readline()) for _ in range(20)]
    others = [start_worker(server, child_env, "increment", "shared", "300")
              for _ in range(2)]
    victim.kill()
    victim.wait()
    for w in others:
        assert finish(w) == "done\n"
    assert server.process.poll() is None
    assert counter("shared").read() == 600
    assert seen == list(range(1, 21))
    # The victim kept adding until killed; every acknowledged add stays.
    assert counter("victim").read() >= seen[-1]
    assert vs.get_variable("after", shape=[1]).created


def test_processes_forked_before_connecting_count_separately(server,
                                                            child_env):
    worker = start_worker(server, child_env, "forked", "count", "100")
    assert finish(worker) == "done\n"
    assert counter("count").read() == 200


def call_in_child(queue):
    try:
        vs.get_variable("v", shape=[1])
        queue.put("no error")
    except errors.FailedPreconditionError as e:
        queue.put(str(e))


def test_process_forked_after_connecting_fails_fast(server):
    vs.get_variable("w", shape=[1])
    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue()
    child = context.Process(target=call_in_child, args=(queue,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert "gRPC does not survive fork()" in queue.get()


DEFAULT_START_METHOD_PROGRAM = """
import multiprocessing, sys
import varscope as vs

def work(address):
    vs.connect(address)
    with vs.variable_scope("mp", reuse=vs.AUTO_REUSE):
        n = vs.get_variable("n", shape=[], dtype=vs.int64,
                            initializer=vs.zeros_initializer())
    for _ in range(50):
        n.assign_add(1)

if __name__ == "__main__":
    vs.connect(sys.argv[1])
    with vs.variable_scope("mp", reuse=vs.AUTO_REUSE):
        n = vs.get_variable("n", shape=[], dtype=vs.int64,
                            initializer=vs.zeros_initializer())
    workers = [multiprocessing.Process(target=work, args=(sys.argv[1],))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    print([w.exitcode for w in workers], int(n.read()),
          multiprocessing.get_start_method())
"""


def test_default_multiprocessing_workers_work_after_connecting(
        server, child_env, tmp_path):
    program = tmp_path / "train.py"
    program.write_text(DEFAULT_START_METHOD_PROGRAM)
    out = subprocess.run([sys.executable, str(program), server.address],
                         env=child_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[0, 0, 0] 150 forkserver\n"


def test_rpcs_release_the_gil(server):
    """A thread blocked in an RPC (to a server that never answers) does not
    stop another thread from running Python and RPCs."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen()
    connections = []
    accepted = threading.Event()

    def accept():
        connections.append(hole.accept()[0])
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    silent = vs.Client("127.0.0.1:%d" % hole.getsockname()[1], timeout=15,
                       max_attempts=1)
    outcome = []

    def blocked_call():
        with silent.as_default():
            try:
                vs.get_variable("v", shape=[1])
            except errors.OpError as e:
                outcome.append(e)

    caller = threading.Thread(target=blocked_call)
    caller.start()
    try:
        # Accepted: the caller is inside its RPC, waiting for an answer.
        assert accepted.wait(10)
        v = vs.get_variable("w", shape=[1], initializer=vs.zeros_initializer())
        v.assign_add([1.0])
        np.testing.assert_array_equal(v.read(), [1.0])
        assert caller.is_alive()
    finally:
        for c in connections:
            c.close()
        hole.close()
        caller.join(20)
    assert len(outcome) == 1
    assert isinstance(outcome[0], (errors.UnavailableError,
                                   errors.DeadlineExceededError))


def test_example_converges(server, child_env):
    result = subprocess.run([sys.executable, EXAMPLE, server.address],
                            env=child_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already exists, disallowed" in result.stdout
    assert result.stdout.endswith("OK\n")


def test_example_finds_the_servers_in_tf_config(server, child_env):
    # As a TensorFlow worker started by a cluster manager: no address, no
    # VARSCOPE_SERVER, only TF_CONFIG (here a one-shard cluster).
    env = {k: v for k, v in child_env.items() if k != "VARSCOPE_SERVER"}
    env["TF_CONFIG"] = json.dumps({"cluster": {"ps": [server.address]},
                                   "task": {"type": "worker", "index": 0}})
    result = subprocess.run([sys.executable, EXAMPLE], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith("OK\n")

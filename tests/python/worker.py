"""A worker process for the multi-process tests: `worker.py COMMAND ADDRESS
[ARGS]`, talking to the server at ADDRESS and reporting on stdout.

Commands:
  variable NAME N       makes Variable(0, name=NAME, dtype=int64), adds 1 to
                        it N times, then prints its name.
  collections KEY       prints {KEY: names in get_collection(KEY),
                        "trainable": names in trainable_variables()} as JSON.
  seeded NAME SEED      creates NAME (float32 [100], random_normal with SEED)
                        and prints its value as JSON.
  increment NAME N      adds 1 to the int64 scalar NAME (created if missing)
                        N times, then prints "done".
  race NAME             prints "ready", waits for a line on stdin, then gets
                        or creates NAME (float32 [50], unseeded random_normal)
                        and prints {"created": ..., "value": [...]} as JSON.
  forever NAME          adds 1 to the int64 scalar NAME until killed,
                        printing each new value.
  steps NAME...         until killed, applies steps that each add 1 to
                        every int64 scalar NAME in one batch_update (a
                        step split over the shards of a cluster's ADDRESS,
                        "a,b,c"), printing the number of steps done.
  forked NAME N         forks 2 processes (before connecting) that each add
                        1 to NAME N times, then prints "done".
  sync NAME REPLICAS STEPS GRAD FIRST
                        for STEPS steps from global step FIRST (or from the
                        current one if FIRST is -1): contributes a gradient
                        of GRAD everywhere for the float64 NAME (SGD,
                        learning rate 1) to synchronous replicas of
                        REPLICAS, prints the reply as JSON and, unless it
                        was stale, waits for the next step.
"""

import json
import multiprocessing
import sys

import numpy as np

import varscope as vs


def counter(name):
    """The int64 scalar NAME at the root, created if missing."""
    with vs.variable_scope(vs.get_variable_scope(), reuse=vs.AUTO_REUSE):
        return vs.get_variable(name, shape=[], dtype=vs.int64,
                               initializer=vs.zeros_initializer())


def increment(name, n):
    v = counter(name)
    for _ in range(n):
        v.assign_add(1)


def connect_and_increment(address, name, n):
    vs.connect(address, timeout=120)
    increment(name, n)


def fork_and_increment(address, name, n):
    # Uses random numbers (as creating a client does) before forking.
    vs.random_normal_initializer()([3])
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=connect_and_increment,
                                args=(address, name, n)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    assert all(child.exitcode == 0 for child in children)


def sync_steps(name, replicas, steps, grad, first):
    with vs.variable_scope(vs.get_variable_scope(), reuse=True):
        var = vs.get_variable(name, dtype=vs.float64)
    opt = vs.train.SyncReplicasOptimizer(
        vs.train.GradientDescentOptimizer(1.0), replicas_to_aggregate=replicas)
    step = vs.global_step() if first < 0 else first
    for _ in range(steps):
        reply = opt.apply_gradients(
            [(np.full(var.shape, grad), var)], local_step=step)
        print(json.dumps(reply), flush=True)
        if reply["outcome"] == "stale":
            return
        step = opt.wait_for_step(step + 1, timeout=120)


def main(command, address, *args):
    if command == "forked":
        name, n = args
        fork_and_increment(address, name, int(n))
        print("done")
        return
    vs.connect(address, timeout=120)
    if command == "seeded":
        name, seed = args
        v = vs.get_variable(name, shape=[100], initializer=(
            vs.random_normal_initializer(seed=int(seed))))
        print(json.dumps(v.read().tolist()))
    elif command == "increment":
        name, n = args
        increment(name, int(n))
        print("done")
    elif command == "race":
        (name,) = args
        print("ready", flush=True)
        sys.stdin.readline()
        with vs.variable_scope(vs.get_variable_scope(), reuse=vs.AUTO_REUSE):
            v = vs.get_variable(name, shape=[50],
                                initializer=vs.random_normal_initializer())
        print(json.dumps({"created": v.created, "value": v.read().tolist()}))
    elif command == "forever":
        (name,) = args
        v = counter(name)
        while True:
            print(v.assign_add(1, read_value=True), flush=True)
    elif command == "steps":
        variables = [counter(name) for name in args]
        done = 0
        while True:
            with vs.batch_update() as batch:
                for v in variables:
                    batch.assign_add(v, 1)
            done += 1
            print(done, flush=True)
    elif command == "sync":
        name, replicas, steps, grad, first = args
        sync_steps(name, int(replicas), int(steps), float(grad), int(first))
    elif command == "variable":
        name, n = args
        v = vs.Variable(0, name=name, dtype=vs.int64)
        for _ in range(int(n)):
            v.assign_add(1, read_value=False)
        print(v.name)
    elif command == "collections":
        (key,) = args
        print(json.dumps({
            key: [v.name for v in vs.get_collection(key)],
            "trainable": [v.name for v in vs.trainable_variables()]}))
    else:
        raise SystemExit("unknown command %r" % command)


if __name__ == "__main__":
    main(*sys.argv[1:])

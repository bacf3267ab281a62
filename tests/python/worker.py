"""A worker process for the multi-process tests: `worker.py COMMAND ADDRESS
[ARGS]`, talking to the server at ADDRESS and reporting on stdout.

Commands:
  seeded NAME SEED      creates NAME (float32 [100], random_normal with SEED)
                        and prints its value as JSON.
  increment NAME N      adds 1 to the int64 scalar NAME (created if missing)
                        N times, then prints "done".
  race NAME             prints "ready", waits for a line on stdin, then gets
                        or creates NAME (float32 [50], unseeded random_normal)
                        and prints {"created": ..., "value": [...]} as JSON.
  forever NAME          adds 1 to the int64 scalar NAME until killed,
                        printing each new value.
  forked NAME N         forks 2 processes (before connecting) that each add
                        1 to NAME N times, then prints "done".
"""

import json
import multiprocessing
import sys

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
    vs.connect(address, timeout=20)
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


def main(command, address, *args):
    if command == "forked":
        name, n = args
        fork_and_increment(address, name, int(n))
        print("done")
        return
    vs.connect(address, timeout=20)
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
    else:
        raise SystemExit("unknown command %r" % command)


if __name__ == "__main__":
    main(*sys.argv[1:])

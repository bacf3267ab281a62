#!/usr/bin/python3
"""A sparse training step from Python: Varscope beside a Redis row store.

    bench/embedding_python.py [--build-dir DIR] [--rows N] [--runs N]

One step, as a recommender's worker takes it: 1024 Zipf-distributed ids,
gather of their embedding rows (64 float32), then a sparse Adagrad step on
the distinct ids. For each Varscope durability mode (wal, interval=1s),
started beside a redis-server with the matching persistence (AOF everysec;
none), times:
- Varscope, a dense [rows, 64] variable: `sparse_read` of the distinct
  ids, then `AdagradOptimizer.apply_gradients` with IndexedSlices (the
  accumulators live on the server);
- Varscope, an embedding variable (`get_embedding_variable`, hash-keyed):
  the same calls;
- Redis as a naive row store: one key per row and per accumulator,
  pipelined MGET of both, the Adagrad update in numpy, one MSET.
Prints ids per second (1024 per step) as the median of N timed runs, and
the ratio of each Varscope row to Redis in the same mode.

Needs Debian's python3-numpy and python3-redis, redis-server, and a build
with the Python extension (build/python).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

from python_clients import free_port, median_rate, wait_port

IDS_PER_STEP = 1024
DIM = 64
LEARNING_RATE = 0.05
INITIAL_ACCUMULATOR = 0.1


def distinct_ids(np, rng, rows):
    """The distinct ids among 1024 of a Zipf distribution over `rows`."""
    return np.unique((rng.zipf(1.2, IDS_PER_STEP) - 1) % rows)


def ids_per_second(step, runs, seconds):
    return median_rate(step, runs, seconds) * IDS_PER_STEP


def varscope_step(vs, np, rng, rows, variable, optimizer):
    def step():
        unique = distinct_ids(np, rng, rows)
        values = variable.sparse_read(unique)
        grads = (values * 0.01 + 0.001).astype(np.float32)
        optimizer.apply_gradients([(vs.IndexedSlices(grads, unique), variable)])

    return step


def redis_step(np, rng, rows, r):
    def step():
        unique = distinct_ids(np, rng, rows)
        keys = [f"e:{i}" for i in unique]
        accs = [f"a:{i}" for i in unique]
        pipe = r.pipeline(transaction=False)
        pipe.mget(keys)
        pipe.mget(accs)
        got_rows, got_accs = pipe.execute()
        values = np.stack([np.frombuffer(v, np.float32) if v else
                           np.zeros(DIM, np.float32) for v in got_rows])
        acc = np.stack([np.frombuffer(a, np.float32) if a else
                        np.full(DIM, INITIAL_ACCUMULATOR, np.float32)
                        for a in got_accs])
        grads = (values * 0.01 + 0.001).astype(np.float32)
        acc += grads * grads
        values -= LEARNING_RATE * grads / np.sqrt(acc)
        update = {}
        for i, key in enumerate(keys):
            update[key] = values[i].tobytes()
            update[accs[i]] = acc[i].tobytes()
        r.mset(update)

    return step


def measure(mode, varscoped, rows, runs, seconds, work):
    import numpy as np
    import redis
    import varscope as vs

    flags = {"wal": "--durability=wal", "interval": "--durability=interval=1s"}
    aof = {"wal": ["--appendonly", "yes", "--appendfsync", "everysec"],
           "interval": ["--appendonly", "no"]}
    vport, rport = free_port(), free_port()
    servers = [
        subprocess.Popen([varscoped, f"--listen=127.0.0.1:{vport}",
                          f"--data-dir={work}/varscope-{mode}", flags[mode]],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port",
                          str(rport), "--save", "", "--dir", work,
                          "--appendfilename", f"redis-{mode}.aof",
                          "--appenddirname", f"redis-{mode}-aof"] + aof[mode],
                         stdout=subprocess.DEVNULL),
    ]
    try:
        wait_port(vport, servers[0])
        wait_port(rport, servers[1])
        vs.connect(f"127.0.0.1:{vport}")
        r = redis.Redis(host="127.0.0.1", port=rport)
        optimizer = vs.train.AdagradOptimizer(
            LEARNING_RATE, initial_accumulator_value=INITIAL_ACCUMULATOR)
        dense = vs.get_variable("dense", shape=[rows, DIM], dtype=vs.float32,
                                initializer=vs.zeros_initializer())
        hashed = vs.get_embedding_variable(
            "hashed", embedding_dim=DIM, initializer=vs.zeros_initializer())
        rng = np.random.default_rng(0)
        cases = (
            ("dense variable", varscope_step(vs, np, rng, rows, dense,
                                             optimizer)),
            ("embedding variable", varscope_step(vs, np, rng, rows, hashed,
                                                 optimizer)),
        )
        theirs = ids_per_second(redis_step(np, rng, rows, r), runs, seconds)
        for name, step in cases:
            ours = ids_per_second(step, runs, seconds)
            print(f"| {mode} | {name} | {ours:,.0f} | {theirs:,.0f} | "
                  f"{ours / theirs:.2f}x |", flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.wait()


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=str(root / "build"))
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.build_dir, "python"))
    varscoped = os.path.join(args.build_dir, "server", "varscoped")
    print(f"{args.rows:,} x {DIM} float32, {IDS_PER_STEP} Zipf ids per step, "
          f"gather + sparse Adagrad; ids/s, median of {args.runs} runs\n")
    print("| mode | Varscope | Varscope ids/s | Redis row store ids/s | "
          "ratio |\n|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as work:
        for mode in ("wal", "interval"):
            measure(mode, varscoped, args.rows, args.runs, args.seconds, work)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Varscope's Python client beside redis-py, in one run on 127.0.0.1.

    bench/python_clients.py [--build-dir DIR] [--runs N] [--seconds S]
                            [--modes wal,interval]

For each Varscope durability mode (wal, interval=1s) starts varscoped and a
redis-server without persistence, then times, for tensors of 4 KiB and
4 MiB (float32): push (`assign(read_value=False)`; redis-py SET of the
bytes), push as TensorFlow writes it (`assign`, which returns the new value;
redis-py SET then GET), and pull (`read()`; redis-py GET into a numpy
array). Prints calls/s as the median of N timed runs of S seconds (half
that for 4 KiB; after a warm-up call) and the ratio Varscope / redis-py of
the medians.

Needs Debian's python3-numpy and python3-redis, redis-server, and a build
with the Python extension (build/python).
"""

import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process):
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"python_clients.py: a server exited ({process.args[0]})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"python_clients.py: nothing listens on port {port}")


def rate(call, seconds):
    """Calls per second of `call`, repeated for about `seconds`."""
    call()
    count, start = 0, time.perf_counter()
    while True:
        call()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def median_rate(call, runs, seconds):
    return statistics.median(rate(call, seconds) for _ in range(runs))


def measure(mode, varscoped, runs, seconds, work):
    import numpy as np
    import redis
    import varscope as vs

    flags = {"wal": "--durability=wal", "interval": "--durability=interval=1s"}
    vport, rport = free_port(), free_port()
    servers = [
        subprocess.Popen([varscoped, f"--listen=127.0.0.1:{vport}",
                          f"--data-dir={work}/varscope-{mode}", flags[mode]],
                         stderr=subprocess.DEVNULL),
        subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port",
                          str(rport), "--save", "", "--appendonly", "no",
                          "--dir", work], stdout=subprocess.DEVNULL),
    ]
    rows = []
    try:
        wait_port(vport, servers[0])
        wait_port(rport, servers[1])
        vs.connect(f"127.0.0.1:{vport}")
        r = redis.Redis(host="127.0.0.1", port=rport)
        for size in (4 << 10, 4 << 20):
            value = np.random.default_rng(0).random(size // 4,
                                                    dtype=np.float32)
            raw = value.tobytes()
            key = f"t{size}"
            v = vs.get_variable(key, shape=value.shape, dtype=vs.float32,
                                initializer=vs.zeros_initializer())
            duration = seconds if size > 4096 else seconds / 2
            cases = (
                ("push", lambda: v.assign(value, read_value=False),
                 lambda: r.set(key, raw)),
                ("push, value back", lambda: v.assign(value),
                 lambda: (r.set(key, raw),
                          np.frombuffer(r.get(key), np.float32))),
                ("pull", v.read,
                 lambda: np.frombuffer(r.get(key), np.float32)),
            )
            for name, ours, theirs in cases:
                a = median_rate(ours, runs, duration)
                b = median_rate(theirs, runs, duration)
                rows.append((mode, size, name, a, b))
                print(f"| {mode} | {size >> 10} KiB | {name} | {a:,.0f} | "
                      f"{b:,.0f} | {a / b:.2f}x |", flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    return rows


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=str(root / "build"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--modes", default="wal,interval",
                        help="durability modes, comma-separated")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if not set(modes) <= {"wal", "interval"}:
        parser.error(f"--modes: wal and/or interval, not {args.modes}")
    sys.path.insert(0, os.path.join(args.build_dir, "python"))
    varscoped = os.path.join(args.build_dir, "server", "varscoped")
    print(f"load average at start: "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}\n")
    print("| mode | size | call | Varscope calls/s | redis-py calls/s | "
          "ratio |\n|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as work:
        for mode in modes:
            measure(mode, varscoped, args.runs, args.seconds, work)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A/B of two Varscope builds' Python client and server, side by side.

    bench/python_ab.py --old DIR --new DIR [--rounds N] [--calls N]
                       [--cases push4m,pull4m,...] [--durability MODE]
                       [--old-env K=V]... [--new-env K=V]...

Starts one varscoped of each build (`--durability=interval=1s` unless
given), then alternates old and new: each round runs every case once per
build, in a fresh Python process that imports that build's extension, and
times --calls calls (10x that for 4 KiB cases) after a warm-up. Prints per
build and case the medians over the rounds of: wall time per call (median
of the calls), client CPU per call (`time.process_time()`, all of the
client's threads), server CPU and context switches per call (summed over
varscoped's threads from /proc's schedstat and status, over the timed
calls and the client process's start and end, which are small against
them). CPU per call is the steady figure on a shared machine.
--old-env/--new-env (repeatable) add environment variables to that side's
server and clients (e.g. GRPC_EXPERIMENTS=...), so one build can be A/B'd
against itself under two settings.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from python_clients import free_port, wait_port

CASES = {
    # name: (bytes, call)
    "push4m": (4 << 20, "v.assign(value, read_value=False)"),
    "pushback4m": (4 << 20, "v.assign(value)"),
    "pull4m": (4 << 20, "v.read()"),
    "push4k": (4 << 10, "v.assign(value, read_value=False)"),
    "pull4k": (4 << 10, "v.read()"),
}

WORKER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import varscope as vs
port, size, call, calls = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
vs.connect(f"127.0.0.1:{port}")
value = np.random.default_rng(0).random(size // 4, dtype=np.float32)
with vs.variable_scope("ab", reuse=vs.AUTO_REUSE):
    v = vs.get_variable(f"t{size}", shape=value.shape, dtype=vs.float32,
                        initializer=vs.zeros_initializer())
step = compile(call, "call", "eval")
eval(step)
times = []
cpu = time.process_time()
for _ in range(calls):
    start = time.perf_counter()
    eval(step)
    times.append(time.perf_counter() - start)
cpu = time.process_time() - cpu
times.sort()
print(json.dumps({"wall": times[len(times) // 2], "cpu": cpu / calls}))
"""


def thread_totals(pid):
    """(CPU seconds, context switches) summed over the process's threads,
    from the scheduler's nanosecond counts (/proc's utime and stime tick
    every 10 ms, too coarse for a call)."""
    cpu, switches = 0, 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            cpu += int(open(f"/proc/{pid}/task/{task}/schedstat").read()
                       .split()[0])
            for line in open(f"/proc/{pid}/task/{task}/status"):
                if "ctxt_switches:" in line:
                    switches += int(line.split()[1])
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return cpu / 1e9, switches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="build dir of A")
    parser.add_argument("--new", required=True, help="build dir of B")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--durability", default="interval=1s")
    parser.add_argument("--old-env", action="append", default=[],
                        help="K=V set for A's server and clients")
    parser.add_argument("--new-env", action="append", default=[],
                        help="K=V set for B's server and clients")
    args = parser.parse_args()
    cases = args.cases.split(",")
    builds = {"old": args.old, "new": args.new}
    envs = {name: dict(os.environ, **dict(kv.split("=", 1) for kv in extra))
            for name, extra in (("old", args.old_env), ("new", args.new_env))}
    print("load average at start:",
          " ".join(open("/proc/loadavg").read().split()[:3]), flush=True)
    results = {(b, c): [] for b in builds for c in cases}
    servers = {}
    with tempfile.TemporaryDirectory() as work:
        try:
            for name, build in builds.items():
                port = free_port()
                servers[name] = (port, subprocess.Popen(
                    [os.path.join(build, "server", "varscoped"),
                     f"--listen=127.0.0.1:{port}",
                     f"--data-dir={work}/{name}",
                     f"--durability={args.durability}"],
                    stderr=subprocess.DEVNULL, env=envs[name]))
                wait_port(port, servers[name][1])
            for _ in range(args.rounds):
                for case in cases:
                    size, call = CASES[case]
                    calls = args.calls * (10 if size < (1 << 20) else 1)
                    for name, build in builds.items():
                        port, server = servers[name]
                        cpu, switches = thread_totals(server.pid)
                        out = subprocess.run(
                            [sys.executable, "-c", WORKER,
                             os.path.join(build, "python"), str(port),
                             str(size), call, str(calls)],
                            check=True, capture_output=True, text=True,
                            env=envs[name]).stdout
                        row = json.loads(out)
                        cpu_after, switches_after = thread_totals(server.pid)
                        row["server"] = (cpu_after - cpu) / calls
                        row["switches"] = (switches_after - switches) / calls
                        results[(name, case)].append(row)
        finally:
            for _, server in servers.values():
                server.terminate()
                server.wait()
    print("load average at end:",
          " ".join(open("/proc/loadavg").read().split()[:3]))
    print("\n| case | build | wall ms/call | client CPU ms/call | "
          "server CPU ms/call | server switches/call |\n"
          "|---|---|---|---|---|---|")
    for case in cases:
        for name in builds:
            rows = results[(name, case)]
            med = {k: statistics.median(r[k] for r in rows) * 1e3
                   for k in ("wall", "cpu", "server")}
            switches = statistics.median(r["switches"] for r in rows)
            print(f"| {case} | {name} | {med['wall']:.3f} | {med['cpu']:.3f} "
                  f"| {med['server']:.3f} | {switches:.2f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The server's CPU time per embedding-variable step, old build against new.

    bench/embedding_server_cpu.py --build-dir A [--build-dir B ...]
        [--modes wal,interval] [--rounds N] [--seconds S]

The step of bench/embedding_python.py on its embedding variable (1024 Zipf
ids, gather + sparse Adagrad from Python), against a fresh varscoped of each
build in turn, round after round: after 2 s of warm-up, the varscoped
process's user + system CPU time (/proc/PID/stat) over S seconds of steps,
divided by the steps taken. Unlike ids/s against Redis, this figure barely
moves when other processes load the machine.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from embedding_python import (DIM, INITIAL_ACCUMULATOR, LEARNING_RATE,
                              varscope_step)
from python_clients import free_port, wait_port

FLAGS = {"wal": "--durability=wal", "interval": "--durability=interval=1s"}


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(build, mode, seconds, work):
    """(server CPU ms per step, steps/s) of one build in one mode."""
    import numpy as np
    import varscope as vs

    port = free_port()
    server = subprocess.Popen(
        [os.path.join(build, "server", "varscoped"),
         f"--listen=127.0.0.1:{port}", f"--data-dir={work}", FLAGS[mode]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, server)
        vs.connect(f"127.0.0.1:{port}")
        optimizer = vs.train.AdagradOptimizer(
            LEARNING_RATE, initial_accumulator_value=INITIAL_ACCUMULATOR)
        hashed = vs.get_embedding_variable(
            "hashed", embedding_dim=DIM, initializer=vs.zeros_initializer())
        step = varscope_step(vs, np, np.random.default_rng(0), 2_000_000,
                             hashed, optimizer)
        warm = time.monotonic() + 2
        while time.monotonic() < warm:
            step()
        cpu, start, steps = cpu_seconds(server.pid), time.monotonic(), 0
        while time.monotonic() < start + seconds:
            step()
            steps += 1
        elapsed = time.monotonic() - start
        return 1000 * (cpu_seconds(server.pid) - cpu) / steps, steps / elapsed
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", action="append", required=True)
    parser.add_argument("--modes", default="wal,interval")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print("| round | mode | build | server CPU ms/step | steps/s |\n"
          "|---|---|---|---|---|", flush=True)
    for round_ in range(1, args.rounds + 1):
        for mode in args.modes.split(","):
            for build in args.build_dir:
                # Each build's Python extension, in a process of its own.
                with tempfile.TemporaryDirectory() as work:
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", build, mode,
                         str(args.seconds), work],
                        check=True, capture_output=True, text=True).stdout
                ms, rate = out.split()
                print(f"| {round_} | {mode} | {build} | {float(ms):.2f} | "
                      f"{float(rate):.1f} |", flush=True)


if __name__ == "__main__":
    # --one BUILD MODE SECONDS WORK: one measurement (what main runs).
    if len(sys.argv) == 6 and sys.argv[1] == "--one":
        build, mode, seconds, work = sys.argv[2:]
        sys.path.insert(0, os.path.join(build, "python"))
        ms, rate = measure(build, mode, float(seconds), work)
        print(ms, rate)
    else:
        main()

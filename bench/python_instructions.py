#!/usr/bin/python3
"""Instructions per call of two Varscope builds, counted by callgrind.

    bench/python_instructions.py --old DIR --new DIR [--side server|client]
                                 [--cases push4k,pull4k,...]

The load-independent companion of python_ab.py (same cases): on a shared
machine wall and CPU time vary by more than most per-call changes, while
the instructions a call executes do not. With --side server (default),
runs each build's varscoped (`--durability=interval=1s`) under valgrind's
callgrind, warms it up with a native client of the same build, zeroes the
counters, makes N calls (300 for 4 KiB cases, 20 for 4 MiB ones) and reads
the instructions of all the server's threads. With --side client, runs
the Python client under callgrind twice, with 10 and 10 + N calls, against
a native server, and takes the difference. Prints instructions per call
and new / old. User space only: the kernel's work (copies, context
switches) is not counted. Needs valgrind.
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

from python_ab import CASES, WORKER
from python_clients import free_port, wait_port


def instructions(path):
    """The total instruction count of a callgrind output file."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    sys.exit(f"python_instructions.py: no totals in {path}")


def client(build, port, case, calls, out=None):
    size, call = CASES[case]
    command = [sys.executable, "-c", WORKER, os.path.join(build, "python"),
               str(port), str(size), call, str(calls)]
    if out is not None:
        command = ["valgrind", "--tool=callgrind",
                   f"--callgrind-out-file={out}"] + command
    subprocess.run(command, check=True, capture_output=True)


def measure(build, side, cases, work):
    """Instructions per call of each case against `build`."""
    port = free_port()
    command = [os.path.join(build, "server", "varscoped"),
               f"--listen=127.0.0.1:{port}", f"--data-dir={work}/data",
               "--durability=interval=1s"]
    prefix = os.path.join(work, "callgrind")
    if side == "server":
        command = ["valgrind", "--tool=callgrind",
                   f"--callgrind-out-file={prefix}.%p"] + command
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    per_call = {}
    try:
        wait_port(port, server)
        for case in cases:
            calls = 300 if CASES[case][0] < (1 << 20) else 20
            client(build, port, case, 20)  # warm-up
            if side == "server":
                control = ["callgrind_control", str(server.pid)]
                subprocess.run(control[:1] + ["-z"] + control[1:], check=True,
                               capture_output=True)
                client(build, port, case, calls)
                subprocess.run(control[:1] + ["-d", case] + control[1:],
                               check=True, capture_output=True)
                time.sleep(1)  # the dump is written asynchronously
                dumps = glob.glob(f"{prefix}.{server.pid}.*")
                total = instructions(max(dumps, key=os.path.getmtime))
            else:
                client(build, port, case, 10, f"{prefix}-a")
                client(build, port, case, 10 + calls, f"{prefix}-b")
                total = (instructions(f"{prefix}-b") -
                         instructions(f"{prefix}-a"))
            per_call[case] = total / calls
    finally:
        server.terminate()
        server.wait()
    return per_call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="build dir of A")
    parser.add_argument("--new", required=True, help="build dir of B")
    parser.add_argument("--side", choices=("server", "client"),
                        default="server")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    cases = args.cases.split(",")
    results = {}
    for name, build in (("old", args.old), ("new", args.new)):
        with tempfile.TemporaryDirectory() as work:
            results[name] = measure(build, args.side, cases, work)
    print(f"| case | side | old instructions/call | new | new / old |\n"
          f"|---|---|---|---|---|")
    for case in cases:
        old, new = results["old"][case], results["new"][case]
        print(f"| {case} | {args.side} | {old / 1e3:,.1f}k | {new / 1e3:,.1f}k "
              f"| {new / old:.3f} |")


if __name__ == "__main__":
    main()

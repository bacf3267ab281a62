#!/usr/bin/env python3
"""Turns varscope_loadgen's JSON lines into bench/run.sh's Markdown tables.

    report.py RESULTS.jsonl --tcp-gbps 3.1,3.0,3.2,... [--shard-cpu 0.3]

Each row shows the median of the runs with [min-max] of throughput, and the
median p50/p99 latency; ratios compare medians. GB/s is 10^9 bytes/s of
tensor payload (train: pulled plus pushed).
"""

import argparse
import json
import statistics
import sys


def size_text(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return str(n)


def count_text(x):
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def latency_text(us):
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.3g} ms"
    return f"{us:.0f} µs"


class Row:
    """One loadgen line, summarised over its runs."""

    def __init__(self, line):
        self.__dict__.update(line)
        rates = [r["ops"] / r["seconds"] for r in line["runs"]]
        self.ops = statistics.median(rates)
        self.ops_min = min(rates)
        self.ops_max = max(rates)
        self.gbps = self.ops * self.payload_bytes / 1e9
        self.p50 = statistics.median(r["p50_us"] for r in line["runs"])
        self.p99 = statistics.median(r["p99_us"] for r in line["runs"])

    def cells(self, scale=1):
        return [
            f"{count_text(self.ops * scale)} [{count_text(self.ops_min * scale)}"
            f"–{count_text(self.ops_max * scale)}]",
            f"{self.gbps:.2f}",
            f"{latency_text(self.p50)} / {latency_text(self.p99)}",
        ]


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


VARIANTS = {"watch": "Redis WATCH/MULTI/EXEC", "lossy": "Redis GET/SET, lossy"}
ORDER = ["read", "write", "accumulate", "train"]
MODES = {
    "wal": "Varscope `--durability=wal` vs Redis AOF (appendfsync everysec)",
    "interval": "Varscope `--durability=interval=1s` vs Redis without "
                "persistence",
}


def report(rows, tcp, shard_cpu):
    out = []
    tcp_gbps = statistics.median(tcp) if tcp else None
    if tcp:
        out.append(
            f"Raw loopback TCP, one stream (iperf3): {tcp_gbps:.2f} GB/s "
            f"median of {len(tcp)} [{min(tcp):.2f}–{max(tcp):.2f}]\n")
    # in run order; the shard rows get a table of their own
    labels = [label for label in dict.fromkeys(r.label for r in rows)
              if not label.startswith("shards=")]
    checks = []
    for label in labels:
        mine = [r for r in rows if r.label == label]
        key = lambda r: (r.workload, r.bytes, r.clients)
        redis = {}
        for r in mine:
            if r.backend == "redis":
                redis.setdefault(key(r), []).append(r)
        dense, sparse = [], []
        varscope = sorted((r for r in mine if r.backend == "varscope"),
                          key=lambda r: (ORDER.index(r.workload)
                                         if r.workload in ORDER else 9,
                                         r.bytes, r.clients))
        for v in varscope:
            if v.workload in ("gather", "scatter", "adagrad"):
                sparse.append([v.workload, f"{v.bytes:,} x 64 float32",
                               str(v.clients)] + v.cells(scale=v.payload_bytes
                                                         // 256))
                continue
            tcp_ratio = f"{v.gbps / tcp_gbps:.2f}" if tcp_gbps else "–"
            for r in redis.get(key(v), [None]):
                name = v.workload
                if r is not None and r.variant:
                    name += f" (vs {VARIANTS[r.variant]}"
                    if r.conflicts:
                        name += f"; {r.conflicts} conflicts"
                    name += ")"
                size = ("100 vars, 16 MiB" if v.workload == "train" else
                        size_text(v.bytes))
                cells = [name, size, str(v.clients)] + v.cells()
                if r is None:
                    cells += ["–", "–", "–", "–"]
                else:
                    cells += r.cells() + [f"{v.ops / r.ops:.2f}"]
                    checks.append((label, v, r))
                dense.append(cells + [tcp_ratio])
        out.append(f"### {MODES.get(label, label)}\n")
        out.append(table(
            ["workload", "size", "clients", "Varscope ops/s [min–max]", "GB/s",
             "p50 / p99", "Redis ops/s [min–max]", "GB/s", "p50 / p99",
             "Varscope/Redis", "Varscope/TCP"], dense))
        if sparse:
            out.append("\nSparse rows (Varscope only; 1024 random rows of 64 "
                       "float32 per call):\n")
            out.append(table(["op", "table", "clients",
                              "rows/s [min–max]", "GB/s", "p50 / p99"],
                             sparse))
        out.append("")
    out.append(shards(rows, shard_cpu))
    out.append(targets(checks, tcp_gbps, rows))
    return "\n".join(out)


def shards(rows, shard_cpu):
    """Training steps on one shard and on several, with the ratio."""
    mine = [r for r in rows if r.label.startswith("shards=")]
    if not mine:
        return ""
    one = next((r for r in mine if r.label == "shards=1"), None)
    cells = []
    for r in mine:
        ratio = f"{r.ops / one.ops:.2f}" if one else "–"
        cells.append([r.label.split("=")[1], str(r.clients)] + r.cells() +
                     [ratio])
    held = f", each shard held to {shard_cpu} CPUs" if shard_cpu else ""
    out = ["### Training steps on one shard and on a cluster "
           f"(`interval=1s`, 100 variables of 16 MiB in all{held})\n",
           table(["shards", "clients", "steps/s [min–max]", "GB/s",
                  "p50 / p99", "vs 1 shard"], cells), ""]
    return "\n".join(out)


def targets(checks, tcp_gbps, rows):
    """The issues' targets, each met or not (per durability mode)."""
    lines = ["### Targets\n"]

    def mark(ok):
        return "met" if ok else "NOT met"

    for label, v, r in checks:
        what = f"{label}: {v.workload} {size_text(v.bytes)} x{v.clients}"
        if v.workload in ("read", "write") and v.bytes >= 1 << 20:
            ratio = v.ops / r.ops
            lines.append(f"- {what}: {ratio:.2f} x Redis (target 1.2): "
                         f"{mark(ratio >= 1.2)}")
            if (v.workload == "read" and v.bytes == 4 << 20 and
                    v.clients == 1 and tcp_gbps):
                t = v.gbps / tcp_gbps
                lines.append(f"- {what}: {t:.2f} x raw TCP (target 0.8): "
                             f"{mark(t >= 0.8)}")
        elif v.workload in ("read", "write") and v.bytes == 4096:
            if v.clients == 16:
                ratio = v.ops / r.ops
                lines.append(f"- {what}: {ratio:.2f} x Redis ops/s "
                             f"(target 0.8): {mark(ratio >= 0.8)}")
            elif v.clients == 1:
                ratio = v.p50 / r.p50
                lines.append(f"- {what}: p50 {ratio:.2f} x Redis's "
                             f"(target at most 1.5): {mark(ratio <= 1.5)}")
        elif v.workload == "train":
            ratio = v.ops / r.ops
            lines.append(f"- {label}: train vs {VARIANTS[r.variant]}: "
                         f"{ratio:.2f} x Redis steps/s (target 2): "
                         f"{mark(ratio >= 2)}")
    for r in rows:
        if r.label == "shards=3":
            one = next((o for o in rows if o.label == "shards=1"), None)
            if one:
                ratio = r.ops / one.ops
                lines.append(f"- train on 3 shards: {ratio:.2f} x 1 shard's "
                             f"steps/s (target 2): {mark(ratio >= 2)}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="loadgen JSON lines")
    parser.add_argument("--tcp-gbps", default="",
                        help="comma-separated iperf3 results in GB/s")
    parser.add_argument("--shard-cpu", default="",
                        help="the CPUs each shard of the training rows was "
                        "held to (run.sh --shard-cpu)")
    args = parser.parse_args()
    with open(args.results) as f:
        rows = [Row(json.loads(line)) for line in f if line.strip()]
    tcp = [float(x) for x in args.tcp_gbps.split(",") if x]
    print(report(rows, tcp, args.shard_cpu))


if __name__ == "__main__":
    sys.exit(main())

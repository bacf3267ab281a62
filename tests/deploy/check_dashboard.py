"""CTest deploy_dashboard: the Grafana dashboard in deploy/grafana, offline.

Checks the JSON's shape (what Grafana needs of a dashboard and its panels)
and that every metric a panel's query names is one a live varscoped
exports: the names come from its /metrics (interval durability, so that the
interval-only series are there too), not from a list kept by hand.

    check_dashboard.py VARSCOPED VARSCOPE DASHBOARD_JSON
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.request

PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "heatmap", "text"}
# PromQL functions and keywords a query may use (anything else that looks
# like a name must be a metric).
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "histogram_quantile",
    "max", "min", "avg", "count", "time", "label_values", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "offset", "topk",
    "bottomk", "delta", "deriv", "abs", "clamp_min", "clamp_max",
}

failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else ": " + detail))
    if not ok:
        failures.append(what)


def exported_names(varscoped, varscope):
    """The families a live varscoped exposes, with their histogram series,
    after a call that succeeds and one that fails (series by method and
    code appear with their first call)."""
    with tempfile.TemporaryDirectory() as work:
        server = subprocess.Popen(
            [varscoped, "--listen=127.0.0.1:0",
             "--data-dir=" + os.path.join(work, "data"),
             "--durability=interval=1s", "--metrics-listen=127.0.0.1:0",
             "--log-level=error"], stdout=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            address, port = re.search(
                r"serving on (\S+) .*metrics on 127\.0\.0\.1:(\d+)\)",
                line).groups()
            subprocess.run([varscope, "--server", address, "stats",
                            "--interval", "0"], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([varscope, "--server", address, "show", "no/such"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with urllib.request.urlopen(
                    "http://127.0.0.1:%s/metrics" % port, timeout=30) as r:
                text = r.read().decode()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
    names = set()
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(family)
        if kind == "histogram":
            names.update(family + s for s in ("_bucket", "_sum", "_count"))
    return names


def metric_names(expr):
    """The metric names in a PromQL expression: identifiers that are not
    functions, keywords, label names (before = or =~ inside braces), label
    values (quoted), grouping labels (inside by/without (...)) or
    durations."""
    expr = re.sub(r'"[^"]*"', '""', expr)              # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)               # matchers
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping
    expr = re.sub(r"\[[^\]]*\]", "", expr)              # ranges
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)
    return {w for w in words if w not in PROMQL_WORDS}


def main(varscoped, varscope, path):
    with open(path) as f:
        dashboard = json.load(f)
    check("the dashboard has a title, a uid and panels",
          isinstance(dashboard.get("title"), str) and
          isinstance(dashboard.get("uid"), str) and
          isinstance(dashboard.get("panels"), list) and dashboard["panels"])
    exported = exported_names(varscoped, varscope)
    check("the server exports metrics", len(exported) > 20, str(exported))
    ids = [p.get("id") for p in dashboard["panels"]]
    check("panel ids are unique integers",
          len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids))
    used = set()
    for panel in dashboard["panels"]:
        title = panel.get("title", "?")
        grid = panel.get("gridPos", {})
        check("panel '%s': type, grid position, targets" % title,
              panel.get("type") in PANEL_TYPES and
              all(isinstance(grid.get(k), int) for k in "xywh") and
              grid["x"] + grid["w"] <= 24 and
              isinstance(panel.get("targets"), list) and panel["targets"])
        refs = [t.get("refId") for t in panel["targets"]]
        check("panel '%s': distinct refIds" % title,
              len(set(refs)) == len(refs) and all(refs))
        for target in panel["targets"]:
            names = metric_names(target.get("expr", ""))
            used |= names
            unknown = sorted(names - exported)
            check("panel '%s': %s names only exported metrics" %
                  (title, target.get("refId")),
                  names and not unknown, "not exported: %s" % unknown)
    for family in ("varscope_rpc_requests_total",
                   "varscope_rpc_duration_seconds_bucket",
                   "process_resident_memory_bytes",
                   "varscope_last_flush_age_seconds"):
        check("a panel shows %s" % family, family in used)
    if failures:
        print("%d checks failed" % len(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main(*sys.argv[1:])

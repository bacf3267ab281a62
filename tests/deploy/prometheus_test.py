"""CTest deploy_prometheus: Debian's real Prometheus scrapes a live varscoped.

Starts varscoped with --metrics-listen, starts `prometheus` with a scrape
config pointing at it, makes calls with the varscope CLI, and checks through
Prometheus' HTTP query API (/api/v1/query) that the server's series are
there and that the call counters move.

    prometheus_test.py VARSCOPED VARSCOPE

Without the prometheus binary the test fails, unless
VARSCOPE_SKIP_PROMETHEUS=1 (then it is reported skipped); CI installs it
(scripts/install-deps.sh). Every wait polls for a state with a generous bound.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SKIP = 77  # CTest's SKIP_RETURN_CODE
BOUND_SECONDS = 180


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def wait_for(what, check):
    """Polls check() until it returns a true value; fails after the bound."""
    deadline = time.monotonic() + BOUND_SECONDS
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            fail("gave up waiting (%d s) for %s" % (BOUND_SECONDS, what))
        time.sleep(0.2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except OSError:
        return None, ""


def start_prometheus(binary, work, target):
    """Starts Prometheus scraping `target` every second on a free port.
    Prometheus cannot listen on port 0: pick a free port and, if another
    process takes it first, try another."""
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: varscope\n"
                "    static_configs:\n      - targets: ['%s']\n" % target)
    for attempt in range(10):
        port = free_port()
        log_path = os.path.join(work, "prometheus-%d.log" % attempt)
        log = open(log_path, "w")
        process = subprocess.Popen(
            [binary, "--config.file=" + config,
             "--storage.tsdb.path=" + os.path.join(work, "tsdb-%d" % attempt),
             "--web.listen-address=127.0.0.1:%d" % port],
            stdout=log, stderr=subprocess.STDOUT)
        url = "http://127.0.0.1:%d" % port

        def ready_or_exited():
            if process.poll() is not None:
                return "exited"
            status, _ = http_get(url + "/-/ready")
            return "ready" if status == 200 else None

        if wait_for("Prometheus to be ready", ready_or_exited) == "ready":
            return process, url
        with open(log_path) as f:
            text = f.read()
        if "address already in use" not in text:
            fail("prometheus exited:\n" + text)
        print("port %d was taken; trying another" % port)
    fail("no free port for prometheus after 10 tries")


def query(url, expr):
    """The samples of instant query `expr`: {labels-as-json: value}."""
    status, body = http_get(
        url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if status != 200:
        return {}
    data = json.loads(body)
    if data["status"] != "success":
        fail("query %s: %s" % (expr, body))
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
            for r in data["data"]["result"]}


def main(varscoped, varscope):
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("VARSCOPE_SKIP_PROMETHEUS") == "1":
            print("SKIP: no prometheus binary (VARSCOPE_SKIP_PROMETHEUS=1)")
            sys.exit(SKIP)
        fail("no prometheus binary on PATH: install Debian's prometheus "
             "package (scripts/install-deps.sh), or set "
             "VARSCOPE_SKIP_PROMETHEUS=1 to skip this test")
    with tempfile.TemporaryDirectory() as work:
        server = subprocess.Popen(
            [varscoped, "--listen=127.0.0.1:0",
             "--data-dir=" + os.path.join(work, "data"),
             "--metrics-listen=127.0.0.1:0", "--log-level=warning"],
            stdout=subprocess.PIPE, text=True)
        prometheus = None
        try:
            line = server.stdout.readline()
            match = re.search(r"serving on (\S+:\d+) .*metrics on (\S+:\d+)\)",
                              line)
            if not match:
                fail("unexpected serving line: %r" % line)
            address, metrics = match.groups()
            prometheus, url = start_prometheus(binary, work, metrics)

            def calls():
                subprocess.run([varscope, "--server", address, "stats",
                                "--interval", "0"], check=True,
                               stdout=subprocess.DEVNULL)
                missing = subprocess.run(
                    [varscope, "--server", address, "show", "no/such"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if missing.returncode != 1:
                    fail("show no/such exited %d" % missing.returncode)

            calls()
            ok = ('varscope_rpc_requests_total{job="varscope",'
                  'method="VariableService/GetServerInfo",code="OK"}')
            first = wait_for("the first scrape of the calls",
                             lambda: query(url, ok))
            before = max(first.values())
            wait_for("up == 1", lambda: query(url, 'up{job="varscope"}')
                     .get(json.dumps({"__name__": "up", "instance": metrics,
                                      "job": "varscope"}, sort_keys=True))
                     == 1)
            for expr in [
                    'varscope_rpc_requests_total{code="NOT_FOUND"}',
                    'varscope_rpc_duration_seconds_bucket{le="+Inf"}',
                    "varscope_variables", "varscope_wal_written_bytes_total",
                    "process_resident_memory_bytes", "process_open_fds",
                    "histogram_quantile(0.99, sum by (le, method) "
                    "(rate(varscope_rpc_duration_seconds_bucket[1m])))"]:
                wait_for(expr, lambda: query(url, expr))
                print("ok   %s" % expr)
            for _ in range(3):
                calls()
            wait_for("the GetServerInfo counter to move past %g" % before,
                     lambda: max(query(url, ok).values() or [0]) >= before + 3)
            print("ok   %s moved from %g by the calls made" % (ok, before))
        finally:
            if prometheus is not None:
                prometheus.send_signal(signal.SIGTERM)
                prometheus.wait()
            server.send_signal(signal.SIGTERM)
            server.wait()
    print("PASS")


if __name__ == "__main__":
    main(*sys.argv[1:])

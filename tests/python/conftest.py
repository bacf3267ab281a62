"""Fixtures: a real varscoped per test, on port 0 with a fresh data dir.

The server binary is $VARSCOPED (set by CTest), else build/server/varscoped
of this checkout; the package is imported from $PYTHONPATH, else
build/python.
"""

import gc
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
try:
    import varscope
except ImportError:
    sys.path.insert(0, str(REPO / "build" / "python"))
    import varscope

VARSCOPED = os.environ.get("VARSCOPED", str(REPO / "build/server/varscoped"))
# Where the default client points between tests (nothing listens on port 1).
_UNUSED_ADDRESS = "127.0.0.1:1"
_SERVING = re.compile(r"varscoped serving on (\S+:\d+) ")


# Test clusters: their shards listen on port 0, so the shard list each one
# records names the shards by position, not by the addresses clients reach
# them at (clients check positions and the cluster id, never addresses).
TEST_CLUSTER_ID = "test-cluster"


def shard_list(count):
    """The shard list test clusters of `count` shards record."""
    return ["shard%d:7070" % i for i in range(count)]


def shard_flags(index, count):
    """The varscoped flags of shard `index` of a test cluster."""
    return ["--cluster=" + ",".join(shard_list(count)),
            "--shard-index=%d" % index, "--cluster-id=" + TEST_CLUSTER_ID]


class Server:
    """A varscoped process serving `address`; `env`: its environment
    (default: this process's)."""

    def __init__(self, data_dir, *flags, env=None):
        self.process = subprocess.Popen(
            [VARSCOPED, "--listen=127.0.0.1:0", "--data-dir=%s" % data_dir,
             *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        line = self.process.stdout.readline()
        match = _SERVING.match(line)
        if not match:
            self.process.kill()
            raise RuntimeError("varscoped did not start: %r %s" %
                               (line, self.process.stderr.read()))
        self.address = match.group(1)

    def stop(self):
        """SIGTERM, then wait for the clean exit."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=120) == 0

    def kill(self):
        """SIGKILL, as a crash."""
        self.process.kill()
        self.process.wait()


@pytest.fixture
def server(tmp_path):
    """A running server; the default client of this process connects to it,
    with a fresh process graph (names, collections, local variables)."""
    varscope.reset_default_graph()
    srv = Server(tmp_path / "db")
    varscope.connect(srv.address, timeout=120)
    yield srv
    # Drop the connection first (including through handles kept alive by
    # reference cycles, e.g. of pytest.raises, or by the process's
    # collections): the server's graceful shutdown waits for connected
    # clients to go away.
    varscope.reset_default_graph()
    varscope.connect(_UNUSED_ADDRESS)
    gc.collect()
    if srv.process.poll() is None:
        srv.stop()


@pytest.fixture
def shards(tmp_path):
    """Two servers as one test cluster; the default client connects to it,
    with a fresh process graph."""
    varscope.reset_default_graph()
    servers = [Server(tmp_path / ("shard%d" % i), *shard_flags(i, 2))
               for i in range(2)]
    varscope.connect(cluster=[s.address for s in servers], timeout=120)
    yield servers
    varscope.reset_default_graph()
    varscope.connect(_UNUSED_ADDRESS)
    gc.collect()
    for s in servers:
        s.stop()


@pytest.fixture
def child_env():
    """The environment for child Python processes, which import varscope
    from where this process did."""
    env = dict(os.environ)
    package_root = str(pathlib.Path(varscope.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env

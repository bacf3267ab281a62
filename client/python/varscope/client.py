"""Connections to a varscoped server and the default connection.

`connect()` sets the process-wide default Client that get_variable and the
other module functions use; `Client.as_default()` overrides it for the
current thread. If nothing was connected, the first use connects as
`connect()` with no arguments would.

gRPC does not survive fork(): a process forked after its parent started gRPC
(created a Client) cannot make calls; they raise
errors.FailedPreconditionError. So the first Client of a process makes
"forkserver" multiprocessing's start method unless the program chose one
(Python 3.14 makes it the default on Linux for the same reason), and
multiprocessing.Process workers just work; a program that forks by other
means should start workers with "spawn", "forkserver" or subprocess.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
from collections.abc import Mapping
from typing import Any

from varscope import _varscope
from varscope import errors

DEFAULT_ADDRESS = "127.0.0.1:7070"
# Deadline of each attempt of a call, in seconds.
DEFAULT_TIMEOUT = 30.0
# How long a call that is safe to retry keeps retrying while the server is
# unavailable (restarting), in seconds.
DEFAULT_RETRY_TIMEOUT = 60.0


class Client:
    """A connection to one varscoped server (or a cluster's shards,
    comma-separated). Thread-safe.

    Does not wait for the server: a call that is safe to retry (see
    connect) retries while the server is unavailable, for `retry_timeout`
    seconds (or `max_attempts` attempts), then raises
    errors.UnavailableError naming the server and the call; a server that
    does not answer an attempt within `timeout` seconds (hung or overloaded)
    raises errors.DeadlineExceededError naming it and the call.

    With several shards, the first call checks the cluster before anything
    else (see check_cluster). With one address, the client talks to that
    server whatever its place in a cluster (to administer one shard).

    `tls_ca`: path of the PEM certificate(s) of the CA that signed the
    servers' certificates: connect with TLS (default: $VARSCOPE_TLS_CA, else
    plaintext). `token`: sent with every call as a bearer token, over TLS
    only (default: $VARSCOPE_TOKEN); a server that does not accept it raises
    errors.UnauthenticatedError. `tls_cert`, `tls_key`: paths of this
    client's PEM certificate and key, for servers that require client
    certificates (varscoped --tls-client-ca-file); both or neither.
    """

    def __init__(self, address: str, timeout: float = DEFAULT_TIMEOUT,
                 max_attempts: int | None = None,
                 token: str | None = None, tls_ca: str | None = None,
                 retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
                 tls_cert: str | None = None,
                 tls_key: str | None = None) -> None:
        global _grpc_started
        _check_process()
        if not _grpc_started:
            _avoid_forking_multiprocessing()
        self._address = address
        self._timeout = timeout
        tls_ca = tls_ca or os.environ.get("VARSCOPE_TLS_CA")
        root_certs = ""
        if tls_ca:
            with open(tls_ca, encoding="ascii") as f:
                root_certs = f.read()
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together: a client "
                             "certificate needs its key")
        cert_chain = private_key = ""
        if tls_cert is not None:
            with open(tls_cert, encoding="ascii") as f:
                cert_chain = f.read()
            with open(tls_key, encoding="ascii") as f:
                private_key = f.read()
        token = token or os.environ.get("VARSCOPE_TOKEN") or ""
        self._impl = _varscope.Client(
            address, timeout=timeout, retry_timeout=retry_timeout,
            max_attempts=max_attempts, tls_root_certs=root_certs,
            auth_token=token.strip(), tls_cert_chain=cert_chain,
            tls_private_key=private_key)
        _grpc_started = True

    def _connection(self):
        """The C++ client (see _check_process). Raises
        errors.FailedPreconditionError once closed."""
        _check_process()
        if self._impl is None:
            raise errors.FailedPreconditionError(
                None, None, "This varscope Client of %s is closed" %
                self._address)
        return self._impl

    def close(self) -> None:
        """Closes this client: later calls through it raise
        errors.FailedPreconditionError, and it stops being the process's
        default (the next call without a client connects again, as if
        nothing had been connected). Variable handles got through it keep
        their connection until they are dropped; the connection closes when
        the last of them goes. Closing twice is harmless."""
        global _process_default
        self._impl = None
        with _lock:
            if _process_default is self:
                _process_default = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()

    @property
    def address(self) -> str:
        """HOST:PORT of the server (a cluster's, comma-separated)."""
        return self._address

    @property
    def timeout(self) -> float:
        """The deadline of each attempt of a call, in seconds."""
        return self._timeout

    def check_cluster(self):
        """Checks now that the shard at each position of this client's list
        is the shard at that position of one cluster (the order varscoped's
        --cluster gave it, or TF_CONFIG's cluster.ps), so that workers with
        another order cannot split the store.

        Raises errors.FailedPreconditionError ("Shard list mismatch: ...",
        naming the cluster's order) otherwise, or the error of reaching a
        shard. The first call of a cluster's client checks it anyway; nothing
        is checked with one address.
        """
        self._connection().check_cluster()

    @contextlib.contextmanager
    def as_default(self):
        """Makes this the default client of the current thread in the block."""
        stack = _thread_clients()
        stack.append(self)
        try:
            yield self
        finally:
            stack.pop()

    def __repr__(self):
        return "<varscope.Client %s>" % self._address


_lock = threading.Lock()
_process_default = None
_thread_state = threading.local()
# Whether this process (or the one it was forked from) created a Client.
_grpc_started = False
# The pid of the parent if this process was forked after gRPC started.
_forked_from = None


def _thread_clients():
    if not hasattr(_thread_state, "clients"):
        _thread_state.clients = []
    return _thread_state.clients


def _after_fork_in_child():
    global _lock, _forked_from
    _lock = threading.Lock()
    if _grpc_started:
        _forked_from = os.getppid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _avoid_forking_multiprocessing():
    """Makes "forkserver" multiprocessing's start method unless the program
    chose one: its workers start from a clean process without gRPC state."""
    if multiprocessing.get_start_method(allow_none=True) is None:
        multiprocessing.set_start_method("forkserver")


def _check_process():
    """Raises errors.FailedPreconditionError in a process forked after its
    parent started gRPC (its gRPC state is unusable)."""
    if _forked_from is not None:
        raise errors.FailedPreconditionError(
            None, None,
            "This process was forked from process %d after it started gRPC "
            "(created a varscope Client), and gRPC does not survive fork(). "
            "Start worker processes with multiprocessing's \"spawn\" or "
            "\"forkserver\" method, or with subprocess." % _forked_from)


def _resolve_address(address, cluster):
    """The server address from the arguments or the environment: a
    cluster's shards are comma-separated, in order."""
    if address is not None and cluster is not None:
        raise ValueError("Give an address or a cluster, not both.")
    if address is not None:
        return address
    if cluster is None and os.environ.get("VARSCOPE_SERVER"):
        return os.environ["VARSCOPE_SERVER"]
    if cluster is None:
        tf_config = os.environ.get("TF_CONFIG")
        if tf_config:
            try:
                cluster = json.loads(tf_config).get("cluster", {}).get("ps")
            except (ValueError, AttributeError) as e:
                raise ValueError("TF_CONFIG is not a JSON object with a "
                                 "'cluster' object: %s" % e) from None
    if isinstance(cluster, Mapping):
        cluster = cluster.get("ps")
    if not cluster:
        return DEFAULT_ADDRESS
    if isinstance(cluster, str):
        cluster = [cluster]
    if not all(isinstance(task, str) and task and "," not in task
               for task in cluster):
        raise ValueError("A cluster is a list of HOST:PORT strings, got %r"
                         % (cluster,))
    return ",".join(cluster)


def connect(address: str | None = None, cluster: Any = None,
            timeout: float = DEFAULT_TIMEOUT,
            max_attempts: int | None = None,
            token: str | None = None, tls_ca: str | None = None,
            retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
            tls_cert: str | None = None, tls_key: str | None = None) -> Client:
    """Connects to a server and makes it the process's default client.

    Args:
      address: "HOST:PORT" of the server, or of a cluster's shards,
        comma-separated.
      cluster: instead of `address`, the parameter servers: a list of
        addresses or a mapping with a "ps" list (as TF_CONFIG's "cluster").
        With several, each variable lives on the shard its full name picks
        (rendezvous hashing); a partitioned variable's parts and its
        optimizer slots live with it. They must be listed in the cluster's
        order: the first call (or Client.check_cluster) raises
        errors.FailedPreconditionError naming that order otherwise.
      timeout: deadline of each attempt of a call, in seconds; a server
        that does not answer in time (hung or overloaded) raises
        errors.DeadlineExceededError naming it and the call, not retried.
      retry_timeout: how long, in seconds, a call that is safe to retry
        keeps retrying while its server is unavailable (e.g. restarting),
        with backoff growing to 0.25 s, before it raises
        errors.UnavailableError naming the server and the call. Safe to
        retry: reads, listings, get_variable, and updates (each numbered so
        that the server applies it once, a multi-shard step on every shard
        exactly once).
      max_attempts: at most this many attempts of such a call (default: as
        many as retry_timeout allows).
      token, tls_ca, tls_cert, tls_key: a bearer token, the CA certificate
        file for TLS and this client's certificate and key files (see
        Client).

    With neither `address` nor `cluster`, the server is $VARSCOPE_SERVER,
    else TF_CONFIG's cluster.ps, else 127.0.0.1:7070 (as the CLI's).

    Returns:
      The new default Client. Does not wait for the server (see Client).
    """
    global _process_default
    client = Client(_resolve_address(address, cluster), timeout=timeout,
                    max_attempts=max_attempts, token=token, tls_ca=tls_ca,
                    retry_timeout=retry_timeout, tls_cert=tls_cert,
                    tls_key=tls_key)
    with _lock:
        _process_default = client
    return client


def default_client() -> Client:
    """The current thread's default client (see module doc)."""
    stack = _thread_clients()
    if stack:
        return stack[-1]
    global _process_default
    with _lock:
        if _process_default is None:
            _process_default = Client(_resolve_address(None, None))
        return _process_default


def list_variables(scope: str = "",
                   recursive: bool = True) -> list[tuple[str, list[int]]]:
    """(name, shape) of the variables in `scope`, as tf.train.list_variables.

    Names are full names without ":0", in name order; shapes are lists. The
    parts of a partitioned variable are listed as `name/part_<i>`. With
    `recursive=False`, only the variables directly in `scope`.
    """
    return [(name, list(shape)) for name, shape in
            default_client()._connection().list_variables(scope,
                                                            recursive)]


def delete_variable(name: Any, recursive: bool = False) -> int:
    """Deletes the variable `name` (a full name or a variable object).

    With `recursive`, also every variable under `name/` (a whole scope, or
    the parts of a partitioned variable). Returns how many were deleted.
    Raises errors.NotFoundError if there was nothing to delete.
    """
    if not isinstance(name, str):
        name = name._shared_name
    return default_client()._connection().delete(name, recursive)

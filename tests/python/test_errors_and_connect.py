"""Error classes, connection settings, unavailable servers and the global
step."""

import json
import pathlib
import pickle
import re
import signal
import socket
import time

import pytest

import varscope as vs
from varscope import errors


class TestErrorClasses:

    CODES = {
        errors.CancelledError: 1, errors.UnknownError: 2,
        errors.InvalidArgumentError: 3, errors.DeadlineExceededError: 4,
        errors.NotFoundError: 5, errors.AlreadyExistsError: 6,
        errors.PermissionDeniedError: 7, errors.ResourceExhaustedError: 8,
        errors.FailedPreconditionError: 9, errors.AbortedError: 10,
        errors.OutOfRangeError: 11, errors.UnimplementedError: 12,
        errors.InternalError: 13, errors.UnavailableError: 14,
        errors.DataLossError: 15, errors.UnauthenticatedError: 16,
    }
    VALUE_ERRORS = {errors.InvalidArgumentError, errors.NotFoundError,
                    errors.AlreadyExistsError}

    @pytest.mark.parametrize("cls", list(CODES), ids=lambda c: c.__name__)
    def test_codes_and_bases(self, cls):
        e = cls(None, None, "the message")
        assert isinstance(e, errors.OpError)
        assert e.error_code == self.CODES[cls]
        assert errors.exception_type_from_error_code(e.error_code) is cls
        assert e.message == str(e) == "the message"
        assert isinstance(e, ValueError) == (cls in self.VALUE_ERRORS)
        copy = pickle.loads(pickle.dumps(e))
        assert type(copy) is cls and copy.message == "the message"

    def test_op_error(self):
        e = errors.OpError(None, None, "m", errors.ABORTED)
        assert e.error_code == errors.ABORTED and str(e) == "m"
        assert pickle.loads(pickle.dumps(e)).error_code == errors.ABORTED


@pytest.fixture
def refused_address():
    """A loopback address that refuses connections: its port is bound (so
    no other process takes it during the test) but not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield "127.0.0.1:%d" % s.getsockname()[1]


def test_unreachable_server_is_unavailable_quickly(refused_address):
    vs.connect(refused_address, timeout=2, max_attempts=2)
    start = time.monotonic()
    with pytest.raises(errors.UnavailableError) as e:
        vs.get_variable("v", shape=[1])
    assert time.monotonic() - start < 5
    assert e.value.error_code == errors.UNAVAILABLE
    assert not isinstance(e.value, ValueError)


def test_unavailable_after_retry_timeout_names_the_server_and_the_call(
        refused_address):
    address = refused_address
    vs.connect(address, retry_timeout=0.5)
    with pytest.raises(errors.UnavailableError) as e:
        vs.get_variable("v", shape=[1])
    assert re.fullmatch(
        r"GetVariable of v: varscoped at %s unavailable after \d+ attempts "
        r"in [\d.]+m?s: .+" % re.escape(address), str(e.value)), str(e.value)


def stop(process):
    """Stops `process` and returns once every thread of it has stopped: kill()
    wakes one thread, which then stops the others, so a loaded machine may
    let the rest serve a call in between."""
    process.send_signal(signal.SIGSTOP)
    tasks = pathlib.Path("/proc/%d/task" % process.pid)
    for _ in range(6000):
        try:
            states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                      for task in tasks.iterdir()]
        except FileNotFoundError:  # a thread ended as we looked
            states = ["R"]
        if all(state in "tT" for state in states):
            return
        time.sleep(0.01)
    pytest.fail("varscoped did not stop within 60 s")


def test_hung_server_is_deadline_exceeded_naming_it(server):
    vs.connect(server.address, timeout=1)
    v = vs.get_variable("v", shape=[1])
    stop(server.process)
    try:
        with pytest.raises(errors.DeadlineExceededError) as e:
            v.read()
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert str(e.value) == (
        "Read of v: no answer from varscoped at %s within 1s (the timeout "
        "of each attempt): the server is hung or overloaded" %
        server.address)


def test_crashed_server_is_unavailable(server):
    # A variable's calls go through the client that got it.
    vs.connect(server.address, timeout=2, max_attempts=1)
    v = vs.get_variable("v", shape=[1])
    server.kill()
    with pytest.raises(errors.UnavailableError):
        v.read()
    with pytest.raises(errors.UnavailableError):
        vs.get_variable("w", shape=[1])


class TestConnect:

    @pytest.fixture(autouse=True)
    def clean_environment(self, monkeypatch):
        monkeypatch.delenv("TF_CONFIG", raising=False)
        monkeypatch.delenv("VARSCOPE_SERVER", raising=False)

    def test_address_and_cluster(self):
        assert vs.connect("h:1").address == "h:1"
        assert vs.connect(cluster=["h:2"]).address == "h:2"
        assert vs.connect(cluster={"ps": ["h:3"]}).address == "h:3"

    def test_environment(self, monkeypatch):
        assert vs.connect().address == "127.0.0.1:7070"
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": {"ps": ["h:5"], "worker": ["w:1"]},
             "task": {"type": "worker", "index": 0}}))
        assert vs.connect().address == "h:5"
        monkeypatch.setenv("VARSCOPE_SERVER", "h:4")
        assert vs.connect().address == "h:4"

    def test_clusters(self, monkeypatch):
        assert vs.connect(cluster=["h:1", "h:2"]).address == "h:1,h:2"
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": {"ps": ["h:1", "h:2", "h:3"]}}))
        assert vs.connect().address == "h:1,h:2,h:3"
        with pytest.raises(ValueError, match="list of HOST:PORT strings"):
            vs.connect(cluster=["h:1", 2])

    def test_bad_arguments(self):
        with pytest.raises(ValueError):
            vs.connect("h:1", cluster=["h:2"])
        with pytest.raises(ValueError):
            vs.connect("h:1", timeout=0)

    def test_as_default_overrides_in_this_thread(self, server,
                                                 refused_address):
        vs.get_variable("v", shape=[1])
        other = vs.Client(refused_address, timeout=1, max_attempts=1)
        with other.as_default():
            with pytest.raises(errors.UnavailableError):
                vs.get_variable("w", shape=[1])
        assert vs.list_variables() == [("v", [1])]


@pytest.mark.usefixtures("server")
class TestGlobalStep:

    def test_lifecycle(self):
        assert vs.get_global_step() is None
        step = vs.create_global_step()
        assert step.name == "global_step:0"
        assert step.shape == () and step.dtype == vs.int64
        assert not step.trainable
        assert step.read() == 0
        with pytest.raises(errors.AlreadyExistsError) as e:
            vs.create_global_step()
        assert isinstance(e.value, ValueError)
        assert str(e.value) == '"global_step" already exists.'
        assert vs.get_global_step().name == "global_step:0"
        assert not vs.get_or_create_global_step().created

    def test_increments(self):
        assert vs.global_step() == 0
        assert vs.increment_global_step() == 1
        assert vs.increment_global_step(5) == 6
        assert vs.global_step() == 6

    def test_lives_at_the_root_and_under_train(self):
        with vs.variable_scope("model", reuse=True):
            step = vs.train.get_or_create_global_step()
        assert step.name == "global_step:0" and step.created
        assert vs.train.get_global_step() is not None
        assert vs.train.increment_global_step() == 1
        assert vs.train.global_step() == 1
        with pytest.raises(ValueError):
            vs.train.create_global_step()

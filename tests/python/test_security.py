"""TLS and tokens from Python: vs.connect(token=..., tls_ca=...)."""

import subprocess

import numpy as np
import pytest

import varscope as vs
from varscope import errors

from conftest import Server
from conftest import _UNUSED_ADDRESS


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 that is its own CA, and its key."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
         "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
def secure_server(tmp_path):
    cert, key = self_signed(tmp_path)
    (tmp_path / "tokens").write_text("s3cret\n")
    server = Server(tmp_path / "db", "--tls-cert-file=" + cert,
                    "--tls-key-file=" + key,
                    "--auth-token-file=%s" % (tmp_path / "tokens"))
    yield server, cert
    vs.connect(_UNUSED_ADDRESS)
    server.stop()


def test_token_and_tls(secure_server, monkeypatch):
    server, ca = secure_server
    vs.connect(server.address, tls_ca=ca, token="s3cret", max_attempts=1)
    w = vs.get_variable("w", shape=[2], initializer=vs.ones_initializer())
    np.testing.assert_array_equal(w.read(), [1, 1])

    vs.connect(server.address, tls_ca=ca, token="wrong", max_attempts=1)
    with pytest.raises(errors.UnauthenticatedError,
                       match="The token is not one this server accepts"):
        vs.get_variable("w", shape=[2])

    monkeypatch.setenv("VARSCOPE_TLS_CA", ca)
    monkeypatch.setenv("VARSCOPE_TOKEN", "s3cret")
    vs.connect(server.address, max_attempts=1)
    with vs.variable_scope(vs.get_variable_scope(), reuse=True):
        np.testing.assert_array_equal(vs.get_variable("w").read(), [1, 1])


def test_client_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    # The self-signed certificate is also the only CA clients may use.
    server = Server(tmp_path / "db", "--tls-cert-file=" + cert,
                    "--tls-key-file=" + key, "--tls-client-ca-file=" + cert)
    try:
        vs.connect(server.address, tls_ca=cert, tls_cert=cert, tls_key=key,
                   max_attempts=1)
        w = vs.get_variable("w", shape=[2], initializer=vs.ones_initializer())
        np.testing.assert_array_equal(w.read(), [1, 1])

        vs.connect(server.address, tls_ca=cert, max_attempts=1)
        with pytest.raises(errors.UnavailableError):
            vs.get_variable("w", shape=[2])
        with pytest.raises(ValueError, match="tls_cert and tls_key go "
                                             "together"):
            vs.connect(server.address, tls_ca=cert, tls_cert=cert)
    finally:
        vs.connect(_UNUSED_ADDRESS)
        server.stop()

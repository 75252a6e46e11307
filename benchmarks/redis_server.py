"""A real ``redis-server`` on a free loopback port with its own temporary directory.

Used by the backends benchmark and by the tests (``tests/redis_server.py`` turns
a missing server into a skip, or a failure under ``CI=true``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REDIS_SERVER = "/usr/bin/redis-server"
INSTALL_HINT = "redis-server is not installed: apt-get install redis-server"
# Starting takes milliseconds; this only bounds a broken start.
START_SECONDS = 15.0


OPENSSL_HINT = "openssl is not installed: apt-get install openssl"


class RedisMissing(RuntimeError):
    """No ``redis-server`` (or, for TLS, no ``openssl``) on this machine."""


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Made with the ``openssl`` command, so the tests need no crypto package."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RedisMissing(OPENSSL_HINT)
    files = TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    ca_key, request = directory / "ca.key", directory / "server.csr"
    ca_ext, server_ext = directory / "ca.cnf", directory / "server.cnf"
    # The extensions Python 3.13's strict verification (VERIFY_X509_STRICT) asks for.
    ca_ext.write_text(
        "[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    server_ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    key = "-newkey rsa:2048 -nodes"
    steps = [
        f"req -x509 {key} -days 2 -keyout {ca_key} -out {files.ca}"
        f" -subj /CN=pytest-dynpool-test-CA -config {ca_ext} -extensions v3",
        f"req {key} -keyout {files.key} -out {request} -subj /CN=127.0.0.1",
        f"x509 -req -in {request} -CA {files.ca} -CAkey {ca_key} -CAcreateserial"
        f" -out {files.cert} -days 2 -extfile {server_ext}",
    ]
    for step in steps:  # the temporary directory's path has no spaces
        subprocess.run([openssl, *step.split()], check=True, capture_output=True)
    return files


def redis_server_path() -> str:
    path = REDIS_SERVER if os.path.exists(REDIS_SERVER) else shutil.which("redis-server")
    if path is None:
        raise RedisMissing(INSTALL_HINT)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process: ``start`` waits until it answers, ``stop`` ends it."""

    def __init__(
        self, directory: Path, password: str | None = None, tls: TlsFiles | None = None
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://``, or with TLS ``rediss://`` trusting the test CA."""
        credentials = "" if self.password is None else f":{self.password}@"
        if self.tls is None:
            return f"redis://{credentials}127.0.0.1:{self.port}/0"
        return f"rediss://{credentials}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"

    def start(self) -> None:
        command = [redis_server_path(), "--bind", "127.0.0.1"]
        if self.tls is None:
            command += ["--port", str(self.port)]
        else:
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            command += ["--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)]
            command += ["--tls-ca-cert-file", str(self.tls.ca)]
        command += ["--dir", str(self.directory), "--save", "", "--appendonly", "no"]
        if self.password is not None:
            command += ["--requirepass", self.password]
        log_path = self.directory / f"redis-{self.port}.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = log_path.read_text(errors="replace")
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log_text}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with contextlib.ExitStack() as stack:
                conn = stack.enter_context(
                    socket.create_connection(("127.0.0.1", self.port), timeout=1)
                )
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls.ca))
                    conn = stack.enter_context(
                        context.wrap_socket(conn, server_hostname="127.0.0.1")
                    )
                conn.sendall(b"PING\r\n")
                # A server with a password answers, too: it asks for the password.
                return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""A TLS-terminating reverse proxy on a loopback port, in front of a plain-HTTP `openhorde serve`.

Some published clients only work against an https horde (aihordeclient downloads an image only when its
`img` starts with ``https``), as every public horde is. This stands in for the nginx or Caddy of a real
deployment: it decrypts on its own port and forwards the bytes, unchanged, to the server. The certificate is a
self-signed one for 127.0.0.1 that the clients are told to trust through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import selectors
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

CHUNK = 65536


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid for two days, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return cert, key


class TlsProxy:
    """Listens on ``https://127.0.0.1:<port>`` (bound at once, so the port can go into the server's settings
    before the server starts) and forwards each connection to ``127.0.0.1:<backend_port>``."""

    def __init__(self, cert: Path, key: Path, backend_port: int) -> None:
        self.backend_port = backend_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tls-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self._context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        try:
            backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=30)
        except OSError:
            secure.close()
            return
        backend.settimeout(None)
        peers = {secure: backend, backend: secure}
        try:
            with selectors.DefaultSelector() as selector:
                for sock in peers:
                    selector.register(sock, selectors.EVENT_READ)
                while not self._closed.is_set():
                    ready = [key.fileobj for key, _ in selector.select(timeout=1.0)]
                    if secure.pending() and secure not in ready:  # decrypted bytes the socket's fd no longer shows
                        ready.append(secure)
                    for source in ready:
                        assert isinstance(source, socket.socket)
                        chunk = source.recv(CHUNK)
                        if not chunk:
                            return
                        peers[source].sendall(chunk)
        except (OSError, ssl.SSLError):
            pass
        finally:
            secure.close()
            backend.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

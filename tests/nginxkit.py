"""Debian's nginx run by a test: the shipped deploy/nginx/clubfeed.conf rendered as the README
says, a self-signed certificate, every path of nginx's in a temporary directory, and clients
that reach it from any loopback address under the site's name."""

from __future__ import annotations

import json
import os
import pwd
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NGINX = "/usr/sbin/nginx"  # Debian's package; `make unit` installs it
SITE = Path(__file__).parents[1] / "deploy" / "nginx" / "clubfeed.conf"
NAME = "clubfeed.test"


def render(template: str, values: dict[str, str]) -> str:
    """What the README's `envsubst '${NGINX_…} …'` does: only these variables, all present."""
    for name, value in values.items():
        assert "${" + name + "}" in template, name
        template = template.replace("${" + name + "}", value)
    assert "${" not in template, "a placeholder the README does not list"
    return template


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for NAME, valid for a day, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def main_conf(directory: Path, site: Path) -> str:
    """Debian's nginx.conf reduced to what a test needs: every path of nginx's under `directory`."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    access_log {directory / 'other.log'};\n{temp}    include {site};\n}}\n"
    )


@dataclass(frozen=True)
class Proxy:
    """A running nginx on 127.0.0.1:`port`, its files in `directory`."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def public_url(self) -> str:
        return f"https://{NAME}:{self.port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.directory / "cert.pem")

    def client(self, address: str, *, sni: str = NAME) -> httpx.Client:
        """A client on loopback `address` that asks for NAME (its TLS name and its Host)."""

        def name_the_server(request: httpx.Request) -> None:
            request.extensions["sni_hostname"] = sni

        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.port}",
            headers={"Host": f"{NAME}:{self.port}"},
            transport=httpx.HTTPTransport(verify=self.tls(), local_address=address),
            event_hooks={"request": [name_the_server]},
            timeout=10,
        )

    def raw(self, address: str) -> ssl.SSLSocket:
        """A TLS connection from `address`, for clients httpx cannot play (slow, lying)."""
        sock = socket.create_connection(("127.0.0.1", self.port), 10, (address, 0))
        return self.tls().wrap_socket(sock, server_hostname=NAME)

    def access_line(self, request_id: str) -> dict[str, Any]:
        """nginx's access line of the request with this id, once nginx has written it."""
        deadline = time.monotonic() + 10
        while True:
            text = (self.directory / "access.log").read_text()
            found = [
                line
                for line in map(json.loads, text.splitlines())
                if line["request_id"] == request_id
            ]
            if found:
                assert len(found) == 1, found
                return found[0]
            assert time.monotonic() < deadline, text
            time.sleep(0.05)

    def logs(self) -> str:
        names = ("nginx.stderr", "error.log")
        return "\n".join(
            (self.directory / n).read_text() for n in names if (self.directory / n).exists()
        )


@contextmanager
def nginx(directory: Path, port: int, upstream_port: int) -> Iterator[Proxy]:
    """nginx in the foreground serving the shipped site on `port` in front of `upstream_port`;
    stopped, and waited for, on exit."""
    cert, key = self_signed(directory)
    site = directory / "clubfeed.conf"
    site.write_text(
        render(
            SITE.read_text(),
            {
                "NGINX_SERVER_NAME": NAME,
                "NGINX_LISTEN": f"127.0.0.1:{port}",
                "NGINX_TLS_CERT": str(cert),
                "NGINX_TLS_KEY": str(key),
                "NGINX_UPSTREAM": f"127.0.0.1:{upstream_port}",
                "NGINX_ACCESS_LOG": str(directory / "access.log"),
            },
        )
    )
    conf = directory / "nginx.conf"
    conf.write_text(main_conf(directory, site))
    command = [NGINX, "-p", str(directory), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]
    with (directory / "nginx.stderr").open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    proxy = Proxy(port, directory, process)
    try:
        deadline = time.monotonic() + 10
        while not _accepts(port):
            assert process.poll() is None, proxy.logs()
            assert time.monotonic() < deadline, proxy.logs()
            time.sleep(0.02)
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True


def answer(connection: ssl.SSLSocket) -> tuple[str, bytes]:
    """The status line and body of the one response on a `Connection: close` connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    connection.close()
    head, body = received.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n", 1)[0].decode(), body

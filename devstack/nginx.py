"""A real mTLS backend for the local stack: the Debian ``nginx`` on loopback.

``start_nginx`` writes a config under a directory of its own (pid, logs and temp dirs too, so it
runs as root without touching /etc or /var) that requires a client certificate issued by the
given CA list (``ssl_verify_client on``, ``ssl_client_certificate``, ``ssl_verify_depth``) and
answers ``200 ok`` to an accepted client; like nginx in front of a real backend, it refuses a
certificate it does not trust with HTTP 400 after the handshake. The canary tests and
``certrotate demo`` use it as the backend APIM would call.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.tls import ServerTls

__all__ = [
    "Nginx",
    "NginxError",
    "find_nginx",
    "free_port",
    "nginx_config",
    "start_nginx",
    "stop_stale",
]

STARTUP_DEADLINE_SECONDS = 10.0
STALE_STOP_SECONDS = 5.0


class NginxError(RuntimeError):
    """nginx is missing, exited, or did not listen in time (the message says which)."""


def find_nginx() -> str | None:
    """The nginx binary (``PATH``, then ``/usr/sbin/nginx``), or None when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Nginx:
    """A running nginx; ``url`` is a backend URL on it (any path answers)."""

    port: int
    process: subprocess.Popen[bytes]
    prefix: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/api/health"

    def backend_url(self, name: str) -> str:
        """A URL for backend ``name`` on this server."""
        return f"https://localhost:{self.port}/{name}"

    @property
    def error_log(self) -> str:
        return (self.prefix / "logs" / "error.log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def nginx_config(
    prefix: Path, port: int, server: ServerTls, client_ca: Path, *, verify_depth: int = 3
) -> str:
    """The whole nginx.conf: one TLS server on ``127.0.0.1:port`` requiring client certificates
    issued under ``client_ca``."""
    temp = prefix / "temp"
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
user root;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {server.cert_pem};
        ssl_certificate_key {server.key_pem};
        ssl_client_certificate {client_ca};
        ssl_verify_client on;
        ssl_verify_depth {verify_depth};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


def stop_stale(prefix: Path) -> int | None:
    """Stop an nginx left running under ``prefix`` by an owner that was killed (``SIGKILL``
    leaves no chance to stop it): the pid in ``prefix/nginx.pid`` when that process is an
    nginx started with this prefix. Returns the pid it stopped, or None (no pid file, a pid
    that is gone or reused by another program). Waits up to ``STALE_STOP_SECONDS``.
    """
    try:
        pid = int((prefix / "nginx.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # nginx rewrites its title ("nginx: master process /usr/sbin/nginx -p PREFIX ..."), so the
    # arguments may be NUL- or space-separated.
    ours = re.compile(rb"-p[\0 ]" + re.escape(os.fsencode(str(prefix))) + rb"(?:[\0 ]|$)")
    if not command.startswith(b"nginx") and b"/nginx\0" not in command:
        return None
    if ours.search(command) is None or not _running(pid):
        return None
    os.kill(pid, signal.SIGTERM)  # nginx: fast shutdown
    deadline = time.monotonic() + STALE_STOP_SECONDS
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def start_nginx(
    prefix: Path, server: ServerTls, client_ca: Path, *, port: int | None = None
) -> Nginx:
    """Start nginx under ``prefix`` on ``port`` (None: a free one) and wait until it listens.

    Raises:
        NginxError: nginx is not installed, exited, or did not listen within 10 s.
    """
    binary = find_nginx()
    if binary is None:
        raise NginxError("nginx is not installed (apt-get install -y nginx)")
    for name in ("logs", "temp"):
        (prefix / name).mkdir(parents=True, exist_ok=True)
    stop_stale(prefix)  # a killed devstack's nginx would hold the port and the pid file
    port = free_port() if port is None else port
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, port, server, client_ca))
    command = [
        binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "logs" / "error.log"),
        "-g", "daemon off;",
    ]  # fmt: skip
    stderr = prefix / "logs" / "stderr.log"
    with stderr.open("wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sink)
    nginx = Nginx(port=port, process=process, prefix=prefix)
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while not _accepts(port):
        try:
            # Doubles as the poll interval and as a check that nginx has not died.
            code = process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            detail = stderr.read_text(errors="replace")[-500:]
            raise NginxError(f"nginx exited with code {code}: {detail}")
        if time.monotonic() > deadline:
            nginx.stop()
            raise NginxError(f"nginx did not listen on {port} within {STARTUP_DEADLINE_SECONDS}s")
    return nginx

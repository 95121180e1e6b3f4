"""The long-running devstack's real backend: the sample scene served by nginx on loopback.

``serve_scene`` (``certrotate devstack``) seeds an empty stack and, when nginx is installed and
wanted, starts it (``devstack.nginx.start_nginx``) under ``DIR/nginx/``: it requires a client
certificate from the scene's root (``DIR/nginx/client-ca.pem``, a copy of the seeded
``trust-anchors.pem``) and presents the stack's own server certificate (``DIR/ca.pem`` signs it).
The seeded backends' URLs are ``https://localhost:PORT/{backend}`` and the ``env`` file gets
``ROTATION_CANARY=enforce`` with ``ROTATION_CANARY_SERVER_CA=DIR/ca.pem``.

Restarts: the port is recorded in ``DIR/nginx/port`` and reused when free. When it is taken (or
the state was seeded without nginx), nginx takes a free port and the scene's backends still on
the old port (or on their made-up URLs) are re-pointed to it, which the notes say. Without nginx
the canary stays ``off`` and the notes say why. nginx stops when the context exits.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devstack.nginx import Nginx, NginxError, find_nginx, free_port, start_nginx
from devstack.seed import (
    OTHER_BACKEND,
    SEED_BACKENDS,
    SeededScene,
    scene_backend_url,
    seed_if_empty,
)
from devstack.stack import TRUST_ANCHORS_FILE

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

    from devstack.stack import Devstack

__all__ = ["NGINX_DIR", "ServedScene", "repoint_backends", "serve_scene"]

NGINX_DIR = "nginx"
PORT_FILE = "port"
CLIENT_CA_FILE = "client-ca.pem"
CANARY_MODE = "enforce"


@dataclass
class ServedScene:
    """What ``serve_scene`` did: the scene seeded now (None: none or already there), the running
    nginx (None: canary off) and notes for stderr (a fallback, or why there is no nginx)."""

    scene: SeededScene | None
    nginx: Nginx | None = None
    notes: list[str] = field(default_factory=list)


def _origin(port: int) -> str:
    return f"https://localhost:{port}"


def _recorded_port(directory: Path) -> int | None:
    try:
        port = int((directory / PORT_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def repoint_backends(stack: Devstack, port: int, previous: int | None) -> int:
    """Point the scene's backends (by name) at ``https://localhost:port/{backend}`` where they
    still carry their made-up URL or one on ``previous``; return how many changed."""
    targets = {name.lower(): name for name in (*SEED_BACKENDS, OTHER_BACKEND)}
    changed = 0
    with stack.state.lock:
        for service in stack.state.services.values():
            for key, entity in service.backends.items():
                name = targets.get(key)
                if name is None:
                    continue
                old = {scene_backend_url(name)}
                if previous is not None:
                    old.add(scene_backend_url(name, _origin(previous)))
                new = scene_backend_url(name, _origin(port))
                if entity.properties.get("url") in old:
                    entity.properties = {**entity.properties, "url": new}
                    entity.etag = stack.state.next_etag()
                    changed += 1
    return changed


def _choose_port(directory: Path, notes: list[str]) -> tuple[int, int | None]:
    """The recorded port when free, else a free one (said in ``notes``); and the recorded one."""
    previous = _recorded_port(directory)
    if previous is not None and _is_free(previous):
        return previous, previous
    port = free_port()
    if previous is not None:
        notes.append(
            f"nginx: port {previous} (recorded in {directory / PORT_FILE}) is taken; "
            f"using {port} and re-pointing the sample backends to it."
        )
    return port, previous


@contextmanager
def serve_scene(
    stack: Devstack, *, now: dt.datetime, seed: bool, nginx: bool
) -> Iterator[ServedScene]:
    """Seed an empty stack (``seed``) and serve the scene's backends with nginx (``nginx`` and
    installed) until the context exits; see the module docstring.

    Raises:
        OSError: the state directory cannot be written.
    """
    directory = stack.state_dir / NGINX_DIR
    notes: list[str] = []
    binary = find_nginx() if nginx else None
    port, previous = _choose_port(directory, notes) if binary else (None, None)
    server = _origin(port) if port is not None else None
    scene = seed_if_empty(stack, now=now, server=server) if seed else None
    served = ServedScene(scene, notes=notes)
    anchors = stack.state_dir / TRUST_ANCHORS_FILE
    if port is None or not anchors.is_file():
        why = (
            "--no-nginx" if not nginx
            else "nginx is not installed (apt-get install -y nginx)" if binary is None
            else "no sample scene to serve (--no-seed)"
        )  # fmt: skip
        notes.append(f"ROTATION_CANARY=off: {why}; the sample backends are not served.")
        yield served
        return
    client_ca = directory / CLIENT_CA_FILE
    directory.mkdir(parents=True, exist_ok=True)
    if not client_ca.is_file():
        client_ca.write_bytes(anchors.read_bytes())
    try:
        served.nginx = start_nginx(directory, stack.tls, client_ca, port=port)
    except (NginxError, OSError) as exc:
        notes.append(f"ROTATION_CANARY=off: nginx could not start ({exc}).")
        yield served
        return
    try:
        (directory / PORT_FILE).write_text(f"{port}\n", encoding="utf-8")
        repoint_backends(stack, port, previous)
        stack.canary_mode, stack.canary_server_ca = CANARY_MODE, stack.ca_bundle
        yield served
    finally:
        with contextlib.suppress(OSError):
            served.nginx.stop()

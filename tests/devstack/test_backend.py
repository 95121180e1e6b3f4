"""``devstack.backend``: `certrotate devstack` serves the sample backends with a real nginx.

nginx (Debian package) is required, as for the canary tests: the test command installs it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.backend import NGINX_DIR, serve_scene
from devstack.seed import EVENT_FILES, OTHER_BACKEND, SEED_BACKENDS, scene_backend_url, seed_scene
from devstack.stack import Devstack
from tests.devstack_fixture import running_devstack

NOW = datetime.now(UTC)
BACKENDS = (*SEED_BACKENDS, OTHER_BACKEND)


def _urls(stack: Devstack) -> dict[tuple[str, str], str]:
    with stack.state.lock:
        return {
            (service.name, entity.name): entity.properties["url"]
            for service in stack.state.services.values()
            for entity in service.backends.values()
        }


def _expected(stack: Devstack, server: str | None) -> dict[tuple[str, str], str]:
    return {(s, b): scene_backend_url(b, server) for s in stack.apim_services for b in BACKENDS}


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class TestServeScene:
    def test_seeded_backends_point_at_nginx_and_the_canary_enforces(self, tmp_path):
        """nginx serves every seeded backend; env enforces the canary with the stack's CA;
        nginx stops with the context and its files live under DIR/nginx."""
        with (
            Devstack.start(tmp_path, ephemeral=False) as stack,
            serve_scene(stack, now=NOW, seed=True, nginx=True) as served,
        ):
            assert served.nginx is not None, served.notes
            port = served.nginx.port
            assert _urls(stack) == _expected(stack, f"https://localhost:{port}")
            assert _accepts(port)
            env = stack.env()
            assert env["ROTATION_CANARY"] == "enforce"
            assert env["ROTATION_CANARY_SERVER_CA"] == str(stack.ca_bundle)
            assert served.nginx.prefix == tmp_path.resolve() / NGINX_DIR
            assert served.notes == []

        assert not _accepts(port)
        assert (tmp_path / NGINX_DIR / "port").read_text().strip() == str(port)

    def test_no_nginx_keeps_made_up_urls_and_the_canary_off(self, tmp_path):
        """nginx=False (--no-nginx): made-up URLs, canary off, the reason in the notes."""
        with (
            Devstack.start(tmp_path, ephemeral=False) as stack,
            serve_scene(stack, now=NOW, seed=True, nginx=False) as served,
        ):
            assert served.nginx is None
            assert _urls(stack) == _expected(stack, None)
            assert stack.env()["ROTATION_CANARY"] == "off"
            assert "ROTATION_CANARY_SERVER_CA" not in stack.env()
            assert served.notes == [
                "ROTATION_CANARY=off: --no-nginx; the sample backends are not served."
            ]
        assert not (tmp_path / NGINX_DIR).exists()

    def test_restart_reuses_the_recorded_port(self, tmp_path):
        """A restart serves the same port, so the saved backend URLs stay valid."""
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            with serve_scene(stack, now=NOW, seed=True, nginx=True) as served:
                assert served.nginx is not None, served.notes
                first = served.nginx.port
            saved = _urls(stack)

        with (
            Devstack.start(tmp_path, ephemeral=False) as stack,
            serve_scene(stack, now=NOW, seed=True, nginx=True) as served,
        ):
            assert served.scene is None  # not re-seeded
            assert served.nginx is not None, served.notes
            assert served.nginx.port == first
            assert _urls(stack) == saved
            assert served.notes == []

    def test_a_taken_port_is_said_and_the_backends_follow_nginx(self, tmp_path):
        """The recorded port is busy: nginx takes another, says so, and re-points the backends."""
        with (
            Devstack.start(tmp_path, ephemeral=False) as stack,
            serve_scene(stack, now=NOW, seed=True, nginx=True) as served,
        ):
            assert served.nginx is not None, served.notes
            first = served.nginx.port

        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", first))
            squatter.listen()
            with (
                Devstack.start(tmp_path, ephemeral=False) as stack,
                serve_scene(stack, now=NOW, seed=True, nginx=True) as served,
            ):
                assert served.nginx is not None, served.notes
                second = served.nginx.port
                assert second != first
                assert _urls(stack) == _expected(stack, f"https://localhost:{second}")
                assert any(f"port {first}" in n and "taken" in n for n in served.notes)

        assert (tmp_path / NGINX_DIR / "port").read_text().strip() == str(second)

    def test_a_scene_seeded_without_nginx_is_re_pointed_but_other_urls_are_kept(self, tmp_path):
        """Made-up scene URLs move to nginx; a backend URL someone changed stays as it is."""
        with Devstack.start(tmp_path, ephemeral=False) as stack:
            seed_scene(stack, now=NOW)
            service = stack.apim_services[0]
            stack.put_backend(
                service, OTHER_BACKEND, url="https://billing.example.test", certificate_ids=[]
            )

        with (
            Devstack.start(tmp_path, ephemeral=False) as stack,
            serve_scene(stack, now=NOW, seed=True, nginx=True) as served,
        ):
            assert served.nginx is not None, served.notes
            expected = _expected(stack, f"https://localhost:{served.nginx.port}")
            expected[service, OTHER_BACKEND] = "https://billing.example.test"
            assert _urls(stack) == expected

    def test_no_scene_no_nginx(self, tmp_path):
        """--no-seed on an empty state: nothing to serve, so no nginx and the canary off."""
        with (
            Devstack.start(tmp_path, ephemeral=False) as stack,
            serve_scene(stack, now=NOW, seed=False, nginx=True) as served,
        ):
            assert served.nginx is None
            assert stack.env()["ROTATION_CANARY"] == "off"
            assert any("--no-seed" in note for note in served.notes)


def _env_file(state: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (state / "env").read_text().splitlines())


class TestCli:
    def test_replay_of_v2_passes_the_canary_against_nginx(self, tmp_path):
        """`set -a; . DIR/env; certrotate replay DIR/events/v2...` probes the real nginx:
        applied with canary.passed; Ctrl-C/SIGTERM leaves nothing listening."""
        with running_devstack(tmp_path) as (lines, errors, proc):
            env = _env_file(tmp_path)
            port = int((tmp_path / NGINX_DIR / "port").read_text())
            assert f"nginx https://localhost:{port}/" in "".join(lines)
            assert env["ROTATION_CANARY"] == "enforce"
            replay = subprocess.run(
                [sys.executable, "-m", "rotation", "replay", "--json",
                 str(tmp_path / "events" / EVENT_FILES["v2"])],
                capture_output=True, text=True, check=False, env={**os.environ, **env},
                timeout=60,
            )  # fmt: skip
            assert _accepts(port)
        assert proc.returncode == 0, errors
        assert not _accepts(port)
        assert replay.returncode == 0, replay.stderr
        record = json.loads(replay.stdout.splitlines()[0])
        assert record["decision"] == "applied"
        assert "canary.passed" in record["findings"]
        access = (tmp_path / NGINX_DIR / "logs" / "access.log").read_text()
        assert "GET /orders-api" in access
        assert "GET /payments-api" in access

    def test_no_nginx_flag_says_why_the_canary_is_off(self, tmp_path):
        """--no-nginx: made-up URLs, ROTATION_CANARY=off in env, the reason on stderr."""
        with running_devstack(tmp_path, "--no-nginx") as (lines, errors, proc):
            env = _env_file(tmp_path)
        assert proc.returncode == 0, errors
        assert env["ROTATION_CANARY"] == "off"
        assert "ROTATION_CANARY_SERVER_CA" not in env
        assert "nginx https://" not in "".join(lines)
        assert "ROTATION_CANARY=off: --no-nginx" in "".join(errors)
        assert not (tmp_path / NGINX_DIR).exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_scene_backend_url_without_a_server_is_made_up(backend):
    """The made-up URLs are what bind_scene has always written (re-pointing relies on it)."""
    assert scene_backend_url(backend).endswith(".demo.test")
    assert scene_backend_url(backend, "https://localhost:1") == f"https://localhost:1/{backend}"

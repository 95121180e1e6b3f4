"""An nginx left behind by a killed owner is stopped by the next start under the same prefix
(``devstack.nginx.stop_stale``); nothing else is ever signalled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.nginx import find_nginx, start_nginx, stop_stale
from devstack.pki import mint_certificate
from devstack.tls import mint_server_tls

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed")


def _ca(tmp_path: Path) -> Path:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(mint_certificate("stale test CA", ca=True).pem)
    return ca


def test_a_second_start_stops_the_nginx_the_first_left_running(tmp_path):
    """The first nginx is never stopped (as after SIGKILL of its owner); starting again under
    the same prefix stops it, and the new one serves."""
    ca = _ca(tmp_path)
    first = start_nginx(tmp_path / "nginx", mint_server_tls(tmp_path / "tls1"), ca)
    try:
        second = start_nginx(tmp_path / "nginx", mint_server_tls(tmp_path / "tls2"), ca)
        try:
            assert first.process.wait(timeout=5) == 0
            assert second.process.poll() is None
            assert (tmp_path / "nginx" / "nginx.pid").read_text().strip() == str(
                second.process.pid
            )
        finally:
            second.stop()
    finally:
        if first.process.poll() is None:
            first.stop()


def test_another_prefix_is_left_alone(tmp_path):
    ca = _ca(tmp_path)
    other = start_nginx(tmp_path / "other", mint_server_tls(tmp_path / "tls1"), ca)
    try:
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "nginx.pid").write_text(f"{other.process.pid}\n")

        assert stop_stale(tmp_path / "mine") is None
        assert other.process.poll() is None
    finally:
        other.stop()


def test_a_pid_file_naming_another_program_or_nothing_is_ignored(tmp_path):
    """A reused pid (here a sleeping Python), a dead pid and garbage: nothing is signalled."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = tmp_path / "nginx.pid"
        for content in (str(sleeper.pid), str(os.getpid()), "999999999", "not a pid", ""):
            pid_file.write_text(content)
            assert stop_stale(tmp_path) is None, content
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert stop_stale(tmp_path / "absent") is None

"""Fixtures of the canary tests: a PKI valid now, the backend CA file, a running nginx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.nginx import Nginx
from tests.canary.servers import CanaryPki, mint_canary_pki, start_nginx


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CanaryPki:
    return mint_canary_pki(tmp_path_factory.mktemp("canary-pki"))


@pytest.fixture(scope="module")
def backend_ca(pki: CanaryPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The backend's own CA list: its root only (the client sends the issuing CA)."""
    path = tmp_path_factory.mktemp("backend-ca") / "backend-ca.pem"
    path.write_bytes(pki.backend_root.pem)
    return path


@pytest.fixture(scope="module")
def nginx(
    pki: CanaryPki, backend_ca: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    server = start_nginx(tmp_path_factory.mktemp("nginx"), pki.server, backend_ca)
    try:
        yield server
    finally:
        server.stop()

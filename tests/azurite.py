"""Pytest plugin: a session-scoped Azurite (blob, queue, table) for every suite that needs storage.

Registered in ``tests/conftest.py`` with ``pytest_plugins = ["tests.azurite"]``. The fixture
``azurite`` starts ``node_modules/.bin/azurite`` in memory on free loopback ports, waits (bounded)
until every port accepts connections, yields an ``Azurite`` (connection string and endpoints) and
terminates it at the end of the session. Without the binary the tests that use it are skipped,
except in CI (``CI`` set), where a missing emulator is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
STARTUP_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Azurite:
    """A running Azurite: loopback ports and the matching connection string."""

    host: str
    blob_port: int
    queue_port: int
    table_port: int

    def _endpoint(self, port: int) -> str:
        return f"http://{self.host}:{port}/{ACCOUNT}"

    @property
    def blob_endpoint(self) -> str:
        """Blob service URL (account in the path, as Azurite expects)."""
        return self._endpoint(self.blob_port)

    @property
    def queue_endpoint(self) -> str:
        """Queue service URL."""
        return self._endpoint(self.queue_port)

    @property
    def table_endpoint(self) -> str:
        """Table service URL."""
        return self._endpoint(self.table_port)

    @property
    def connection_string(self) -> str:
        """A storage connection string for all three services."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until_ready(process: subprocess.Popen[bytes], ports: list[int], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while not all(_accepts(p) for p in ports):
        try:
            # Doubles as the poll interval and as a check that Azurite has not died.
            code = process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            detail = log.read_text(errors="replace")[-500:].strip()
            pytest.fail(f"Azurite exited with code {code} before listening: {detail}")
        if time.monotonic() > deadline:
            pytest.fail(f"Azurite did not listen on {ports} within {STARTUP_DEADLINE_SECONDS}s")


@pytest.fixture(name="azurite", scope="session")
def _azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite for the whole session (blob, queue, table on free loopback ports)."""
    if not AZURITE.exists():
        message = f"Azurite not installed ({AZURITE}); run `npm install` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    blob, queue, table = _free_ports(3)
    # Azurite refuses --location with --inMemoryPersistence; the tmp dir is its working directory.
    location = tmp_path_factory.mktemp("azurite")
    command = [
        str(AZURITE),
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
        "--inMemoryPersistence",
        "--skipApiVersionCheck", "--loose", "--silent",
    ]  # fmt: skip
    node = shutil.which("node")
    env = (
        {**os.environ, "PATH": f"{Path(node).parent}:{os.environ.get('PATH', '')}"}
        if node
        else None
    )
    log = location / "azurite.stderr"
    errors = log.open("wb")
    process = subprocess.Popen(
        command, cwd=location, stdout=subprocess.DEVNULL, stderr=errors, env=env
    )
    try:
        _wait_until_ready(process, [blob, queue, table], log)
        yield Azurite(host="127.0.0.1", blob_port=blob, queue_port=queue, table_port=table)
    finally:
        # In-memory only, so nothing to flush; Azurite's graceful close waits for idle
        # keep-alive connections, which is why the grace period is short.
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        errors.close()


@dataclass(frozen=True, slots=True)
class AzuriteOAuth:
    """A running Azurite over HTTPS with ``--oauth basic``: bearer tokens accepted.

    ``ca_pem`` is the CA bundle a client must trust (``connection_verify``). Azurite's basic
    OAuth checks a token's shape, lifetime, issuer and audience, not its signature, so a test can
    mint its own (``tests.azurite.storage_token``).
    """

    host: str
    blob_port: int
    table_port: int
    ca_pem: Path

    @property
    def blob_endpoint(self) -> str:
        """Blob service URL over HTTPS (account in the path)."""
        return f"https://{self.host}:{self.blob_port}/{ACCOUNT}"

    @property
    def table_endpoint(self) -> str:
        """Table service URL over HTTPS (account in the path)."""
        return f"https://{self.host}:{self.table_port}/{ACCOUNT}"


def storage_token(
    *, now: int, lifetime: int = 3600, audience: str = "https://storage.azure.com"
) -> str:
    """An unsigned Entra-shaped JWT that Azurite's ``--oauth basic`` accepts (test use only)."""
    import base64  # noqa: PLC0415
    import json  # noqa: PLC0415

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "aud": audience,
        "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
        "iat": now,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": "11111111-1111-1111-1111-111111111111",
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture(name="azurite_oauth", scope="session")
def _azurite_oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteOAuth]:
    """A second Azurite (blob, table) over HTTPS with ``--oauth basic``, certificate minted here."""
    from devstack.tls import mint_server_tls  # noqa: PLC0415

    if not AZURITE.exists():
        message = f"Azurite not installed ({AZURITE}); run `npm install` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    location = tmp_path_factory.mktemp("azurite-oauth")
    tls = mint_server_tls(location)
    blob, queue, table = _free_ports(3)
    command = [
        str(AZURITE),
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
        "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
        "--oauth", "basic", "--cert", str(tls.cert_pem), "--key", str(tls.key_pem),
    ]  # fmt: skip
    node = shutil.which("node")
    env = (
        {**os.environ, "PATH": f"{Path(node).parent}:{os.environ.get('PATH', '')}"}
        if node
        else None
    )
    log = location / "azurite.stderr"
    errors = log.open("wb")
    process = subprocess.Popen(
        command, cwd=location, stdout=subprocess.DEVNULL, stderr=errors, env=env
    )
    try:
        _wait_until_ready(process, [blob, queue, table], log)
        yield AzuriteOAuth(host="127.0.0.1", blob_port=blob, table_port=table, ca_pem=tls.ca_pem)
    finally:
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        errors.close()

"""Devstack fixtures for every suite: a fresh stack per test on free ports, minted PKIs, clients.

Registered from ``tests/conftest.py`` (``pytest_plugins``). A stack starts in milliseconds (EC
TLS keys), so each test gets its own: nothing leaks between tests. The Key Vault SDK challenge
caches are cleared around every test that uses a stack.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from azure.keyvault.certificates._shared import http_challenge_cache as certificates_cache
from azure.keyvault.secrets._shared import http_challenge_cache as secrets_cache

from devstack.pki import Issued, mint_chain, to_pem_bundle, to_pkcs12
from devstack.seed import ScenePki, SeededScene, mint_scene_pki, seed_scene
from devstack.stack import Devstack
from rotation.adapters.apim import ArmApimGateway
from rotation.adapters.credentials import StaticTokenCredential
from rotation.adapters.keyvault import KeyVaultCertificateSource


@contextmanager
def running_devstack(
    state: Path, *args: str, sig: int = signal.SIGTERM
) -> Iterator[tuple[list[str], list[str], subprocess.Popen[str]]]:
    """`certrotate devstack --state STATE ARGS` in a process of its own until it listens; on
    exit ``sig`` stops it. Yields its stdout lines so far, a list that receives its stderr
    once stopped (the rest of stdout is appended to the lines), and the process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotation", "devstack", "--state", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    errors: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "listening" in line:
                break
        yield lines, errors, proc
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=20)
        lines.append(rest)
        errors.append(err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@dataclass(frozen=True)
class DevstackPki:
    """Two independent EC chains ``[leaf, intermediate, root]`` (minted once per session)."""

    first: list[Issued]
    second: list[Issued]

    def pfx(self, which: str = "first") -> bytes:
        """PKCS#12 (empty password) with key, leaf and chain."""
        chain = getattr(self, which)
        return to_pkcs12(chain[0], chain[1:])

    def pem(self, which: str = "first") -> bytes:
        """PEM bundle: key, leaf, chain."""
        chain = getattr(self, which)
        return to_pem_bundle(chain[0], chain[1:])


@pytest.fixture(scope="session", name="devstack_pki")
def _devstack_pki() -> DevstackPki:
    return DevstackPki(
        first=mint_chain(depth=3, kind="ec", size=256, leaf_name="first.devstack.test"),
        second=mint_chain(depth=3, kind="ec", size=256, leaf_name="second.devstack.test"),
    )


def _clear_challenge_caches() -> None:
    certificates_cache.clear()
    secrets_cache.clear()


@pytest.fixture(name="devstack")
def _devstack() -> Iterator[Devstack]:
    _clear_challenge_caches()
    with Devstack.start() as stack:
        yield stack
    _clear_challenge_caches()


@pytest.fixture(name="devstack_http")
def _devstack_http(devstack: Devstack) -> Iterator[httpx.Client]:
    """A plain REST client trusting the stack's CA (no auth header by default)."""
    context = ssl.create_default_context(cafile=str(devstack.ca_bundle))
    with httpx.Client(verify=context, timeout=10) as client:
        yield client


@pytest.fixture(name="devstack_credential")
def _devstack_credential(devstack: Devstack) -> StaticTokenCredential:
    return StaticTokenCredential(devstack.token)


@pytest.fixture(name="kv_source")
def _kv_source(
    devstack: Devstack, devstack_credential: StaticTokenCredential
) -> KeyVaultCertificateSource:
    """The Key Vault adapter against the stand-in, with one quick retry."""
    return KeyVaultCertificateSource(
        devstack_credential,
        connection_verify=str(devstack.ca_bundle),
        verify_challenge_resource=False,
        retry_total=1,
        retry_backoff_factor=0,
    )


@pytest.fixture(name="apim_gateway")
def _apim_gateway(
    devstack: Devstack, devstack_credential: StaticTokenCredential
) -> ArmApimGateway:
    """The APIM adapter against the ARM stand-in, with one quick retry."""
    return ArmApimGateway(
        devstack_credential,
        base_url=devstack.arm_endpoint,
        connection_verify=str(devstack.ca_bundle),
        retry_total=1,
        retry_backoff_factor=0,
    )


@pytest.fixture(name="scene_pki", scope="session")
def _scene_pki() -> ScenePki:
    """The sample scene's certificates, minted once (valid for a quarter year from now)."""
    return mint_scene_pki(datetime.now(UTC))


@pytest.fixture(name="scene")
def _scene(devstack: Devstack, scene_pki: ScenePki) -> SeededScene:
    """``devstack`` seeded with the sample scene (``devstack.seed.seed_scene``)."""
    return seed_scene(devstack, now=datetime.now(UTC), pki=scene_pki)

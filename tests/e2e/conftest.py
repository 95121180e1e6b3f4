"""End-to-end fixtures: ``world`` (a fresh devstack per test: it starts in milliseconds),
``bound`` (the common scene: v1 bound in two services, v2 imported) and the session PKI.

See ``tests/e2e/world.py`` for what a ``World`` can do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.pki import make_key, mint_chain
from devstack.stack import Devstack
from tests.e2e.world import CERT, E2ePki, World, mint_stranger


@pytest.fixture(scope="session", name="e2e_pki")
def _e2e_pki() -> E2ePki:
    inter, root = mint_chain(depth=3, kind="ec", size=256)[1:]
    return E2ePki(
        root=root,
        intermediate=inter,
        stranger=mint_stranger(),
        key=make_key("ec", 256),
    )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROTATION_LOG_LEVEL", raising=False)


@pytest.fixture(name="world")
def _world(
    devstack: Devstack, e2e_pki: E2ePki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> World:
    return World(devstack, e2e_pki, tmp_path, monkeypatch)


@pytest.fixture(name="bound")
def _bound(world: World) -> tuple[World, str, str]:
    """The common scene: v1 bound in both services (entity + backends), v2 imported.

    svc1: entity ``partner-mtls`` used by backends ``api-a`` and ``api-b``; svc2: entity
    ``partner-mtls`` used by ``api-c``; plus an unrelated entity/backend in svc1.
    """
    v1 = world.add_version()
    for svc in (world.svc1, world.svc2):
        world.bind(svc, CERT, v1)
    world.add_backend(world.svc1, "api-a", CERT)
    world.add_backend(world.svc1, "api-b", CERT)
    world.add_backend(world.svc2, "api-c", CERT)
    other = world.add_version("unrelated")
    world.bind(world.svc1, "unrelated", other, name="unrelated")
    world.add_backend(world.svc1, "api-other", "unrelated")
    v2 = world.add_version()
    return world, v1, v2

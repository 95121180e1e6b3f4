"""``devstack.scene``: large scenes built through the SDK, in client processes."""

from __future__ import annotations

import pytest

from devstack.scene import CERTIFICATE, OTHER_CERTIFICATE, build_scale_scene
from devstack.stack import Devstack
from rotation.config import Settings


@pytest.fixture(name="stack")
def _stack():
    with Devstack.start(services=("apim-scale", "apim-other")) as stack:
        yield stack


def test_builds_the_scene_through_the_arm_api(stack):
    """Entities and backends arrive as PUTs; 3 backends present partner-mtls pinned to v1."""
    scene = build_scale_scene(stack, backends=40, entities=4)

    svc = stack.state.service("apim-scale")
    sid = stack.service_id("apim-scale")
    assert len(svc.backends) == 40
    assert len(svc.certificates) == 4
    assert stack.request_log.arm.count("PUT", "*/apim-scale/backends/*") == 40
    assert stack.request_log.arm.count("PUT", "*/apim-scale/certificates/*") == 4
    presenting = {
        key
        for key, backend in svc.backends.items()
        if backend.properties["credentials"]["certificateIds"]
        == [f"{sid}/certificates/{CERTIFICATE}"]
    }
    assert presenting == set(scene.bound) == {"bound-000", "bound-001", "bound-002"}
    pinned = svc.certificates[CERTIFICATE].properties["keyVault"]["secretIdentifier"]
    assert pinned == f"{stack.vault_url}/secrets/{CERTIFICATE}/{scene.versions[0]}"
    others = [c for k, c in svc.certificates.items() if k != CERTIFICATE]
    assert all(
        f"/secrets/{OTHER_CERTIFICATE}/" in c.properties["keyVault"]["secretIdentifier"]
        for c in others
    )
    assert not stack.state.service("apim-other").backends


def test_new_versions_events_and_settings(stack):
    """A new version is the newest; its event names it; the settings name the one service."""
    scene = build_scale_scene(stack, backends=3, entities=2, workers=1)

    version = scene.new_version()
    event = scene.event(version)
    settings = Settings.from_env(scene.env(ROTATION_STRATEGY="blue-green"))

    assert stack.state.kv.get(CERTIFICATE).version == version == scene.versions[-1]
    assert event["data"]["Id"] == f"{stack.vault_url}/certificates/{CERTIFICATE}/{version}"
    assert settings.apim_services == (stack.service_id("apim-scale"),)
    assert str(settings.strategy) == "blue-green"
    assert scene.anchors.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_refused_put_fails_the_build_naming_the_error(stack):
    """A client process whose PUT is refused ends the build with its last error line."""
    stack.faults_arm.fail("*/backends/*", status=404, count=1)

    with pytest.raises(RuntimeError, match=r"building the scene failed: .*Injected fault"):
        build_scale_scene(stack, backends=5, entities=2, workers=1)


def test_bad_sizes_are_refused(stack):
    with pytest.raises(ValueError, match="backends >= bound"):
        build_scale_scene(stack, backends=2, bound=3)

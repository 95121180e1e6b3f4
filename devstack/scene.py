"""Large scenes for benchmarks and tests: one APIM service with N backends, built through the SDK.

``build_scale_scene(stack, backends=20_000)`` mints a PKI (EC P-256: a root, an intermediate
and one leaf key), imports ``partner-mtls`` v1 into the Key Vault stand-in, and then creates the
APIM side with the unmodified ``azure-mgmt-apimanagement`` client over HTTPS, as a deployment
script would: ``entities`` certificate entities from Key Vault (``partner-mtls`` pinned to v1's
versioned secret, the others on ``other-mtls``), and ``backends`` backends, of which ``bound``
present ``partner-mtls`` and the rest the other entities in turn. The backend PUTs run in
``workers`` client processes (the stand-in keeps this one). ``ScaleScene.new_version`` imports a fresh trusted version and
``event`` builds its ``CertificateNewVersionCreated`` delivery, for ``certrotate replay``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.pki import Issued, PrivateKey, make_key, mint_certificate, to_pkcs12
from devstack.seed import new_version_event

if TYPE_CHECKING:
    from azure.mgmt.apimanagement import ApiManagementClient

    from devstack.stack import Devstack

__all__ = ["CERTIFICATE", "OTHER_CERTIFICATE", "ScaleScene", "build_scale_scene", "sdk_client"]

CERTIFICATE = "partner-mtls"
OTHER_CERTIFICATE = "other-mtls"
ANCHORS_FILE = "scale-trust-anchors.pem"
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Target:
    """What a client process needs to reach the stand-in (picklable)."""

    token: str
    subscription_id: str
    arm_endpoint: str
    ca_bundle: str
    resource_group: str
    service: str
    vault_url: str


def sdk_client(stack: Devstack | _Target) -> ApiManagementClient:
    """An ``ApiManagementClient`` on the stack's ARM stand-in (its CA, its token)."""
    from azure.mgmt.apimanagement import ApiManagementClient  # noqa: PLC0415 - heavy, on use

    from rotation.adapters.credentials import StaticTokenCredential  # noqa: PLC0415

    return ApiManagementClient(
        StaticTokenCredential(stack.token),
        stack.subscription_id,
        base_url=stack.arm_endpoint,
        connection_verify=str(stack.ca_bundle),
        # requests would scan the environment for proxy settings on every request (a third of
        # the client's time per PUT); the stand-in is on loopback
        use_env_settings=False,
    )


@dataclass(slots=True)
class ScaleScene:
    """A built scene: where it is, what is bound, and a way to mint new versions."""

    stack: Devstack
    service: str
    anchors: Path
    bound: tuple[str, ...]  # backend ids presenting ``partner-mtls``
    versions: list[str]  # ``partner-mtls`` versions imported so far, oldest first
    seconds: float  # wall time of the SDK creation of the APIM side
    cpu_seconds: float  # CPU time of it: the stand-in's (this process) and the clients'
    _issuer: Issued = field(repr=False)
    _key: PrivateKey = field(repr=False)
    _clock: Callable[[], dt.datetime] = field(repr=False)

    def new_version(self) -> str:
        """Import a fresh trusted leaf as the newest version of ``partner-mtls``."""
        now = self._clock()
        leaf = mint_certificate(
            "partner.scale.test", issuer=self._issuer, key=self._key,
            not_before=now - _DAY, not_after=now + 200 * _DAY,
        )  # fmt: skip
        version = self.stack.import_certificate(CERTIFICATE, to_pkcs12(leaf, [self._issuer]))
        self.versions.append(version)
        return version

    def event(self, version: str) -> dict[str, Any]:
        """The Event Grid event Key Vault publishes for ``version``."""
        return new_version_event(self.stack, version, self._clock())

    def env(self, **extra: str) -> dict[str, str]:
        """Settings pointing certrotate at the scene's one service, trusting its root."""
        return {
            **self.stack.env(),
            "ROTATION_APIM_SERVICES": self.stack.service_id(self.service),
            "ROTATION_TRUST_ANCHORS": str(self.anchors),
            **extra,
        }


def build_scale_scene(
    stack: Devstack,
    *,
    backends: int,
    bound: int = 3,
    entities: int = 10,
    workers: int = 2,
    service: str | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> ScaleScene:
    """Build the scene in ``service`` (default: the stack's first) through the SDK.

    Raises:
        ValueError: ``backends`` < ``bound`` or ``entities`` < 2.
        azure.core.exceptions.HttpResponseError: the stand-in refused an entity PUT.
        RuntimeError: a client process failed (its last error line is in the message).
    """
    if backends < bound or entities < 2:
        raise ValueError("need backends >= bound and entities >= 2")
    now = clock()
    root = mint_certificate(
        "certrotate Scale Root CA", key=make_key("ec", 256), ca=True,
        not_before=now - 365 * _DAY, not_after=now + 3650 * _DAY,
    )  # fmt: skip
    issuer = mint_certificate(
        "certrotate Scale Issuing CA", issuer=root, key=make_key("ec", 256), ca=True,
        path_length=0, not_before=now - 365 * _DAY, not_after=now + 1825 * _DAY,
    )  # fmt: skip
    anchors = stack.state_dir / ANCHORS_FILE
    anchors.write_bytes(root.pem)
    name = service or stack.apim_services[0]
    scene = ScaleScene(
        stack, name, anchors, tuple(f"bound-{i:03d}" for i in range(bound)), [], 0.0, 0.0,
        issuer, make_key("ec", 256), clock,
    )  # fmt: skip
    first = scene.new_version()
    other_leaf = mint_certificate(
        "other.scale.test", issuer=issuer, key=make_key("ec", 256),
        not_before=now - _DAY, not_after=now + 200 * _DAY,
    )  # fmt: skip
    other = stack.import_certificate(OTHER_CERTIFICATE, to_pkcs12(other_leaf, [issuer]))

    target = _Target(
        stack.token, stack.subscription_id, stack.arm_endpoint, str(stack.ca_bundle),
        stack.resource_group, name, stack.vault_url,
    )  # fmt: skip
    others = [f"other-{i:03d}" for i in range(entities - 1)]
    start, cpu = time.perf_counter(), _cpu()
    _put_entities(target, [(CERTIFICATE, CERTIFICATE, first)])
    _put_entities(target, [(e, OTHER_CERTIFICATE, other) for e in others])
    # The stand-in serves from this process; the clients run in their own processes so that
    # the SDK's per-request work does not share this interpreter's lock with the server.
    cuts = [backends * k // workers for k in range(workers + 1)]
    jobs = [
        _spawn_worker({"target": asdict(target), "lo": lo, "hi": hi, "bound": scene.bound,
                       "others": others})
        for lo, hi in itertools.pairwise(cuts)
        if hi > lo
    ]  # fmt: skip
    failures = [err for err in (_finish(job) for job in jobs) if err]
    if failures:
        raise RuntimeError("building the scene failed: " + failures[0])
    scene.seconds = time.perf_counter() - start
    scene.cpu_seconds = _cpu() - cpu
    return scene


def _put_entities(target: _Target, items: list[tuple[str, str, str]]) -> None:
    """PUT certificate entities ``(entity, certificate, version)`` from Key Vault."""
    from azure.mgmt.apimanagement.models import (  # noqa: PLC0415 - heavy, on use
        CertificateCreateOrUpdateParameters,
        KeyVaultContractCreateProperties,
    )

    client = sdk_client(target)
    for entity, certificate, version in items:
        secret = f"{target.vault_url}/secrets/{certificate}/{version}"
        params = CertificateCreateOrUpdateParameters(
            key_vault=KeyVaultContractCreateProperties(secret_identifier=secret)
        )
        client.certificate.create_or_update(target.resource_group, target.service, entity, params)


def _put_backends(
    target: _Target, lo: int, hi: int, bound: tuple[str, ...], others: tuple[str, ...]
) -> None:
    """PUT backends ``lo..hi-1`` (runs in a client process): the first ``len(bound)`` present
    ``partner-mtls``, the rest the other entities in turn."""
    from azure.mgmt.apimanagement.models import (  # noqa: PLC0415 - heavy, on use
        BackendContract,
        BackendCredentialsContract,
    )

    client = sdk_client(target)
    sid = (
        f"/subscriptions/{target.subscription_id}/resourceGroups/{target.resource_group}"
        f"/providers/Microsoft.ApiManagement/service/{target.service}"
    )
    for i in range(lo, hi):
        if i < len(bound):
            backend, entity = bound[i], CERTIFICATE
        else:
            backend, entity = f"backend-{i:06d}", others[i % len(others)]
        params = BackendContract(
            url=f"https://{backend}.scale.test", protocol="http",
            credentials=BackendCredentialsContract(certificate_ids=[f"{sid}/certificates/{entity}"]),
        )  # fmt: skip
        client.backend.create_or_update(target.resource_group, target.service, backend, params)


def _cpu() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _spawn_worker(job: dict[str, Any]) -> subprocess.Popen[bytes]:
    """``python -m devstack.scene`` with the job on stdin (the token never reaches argv)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.scene"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(job).encode())
    proc.stdin.close()
    return proc


def _finish(proc: subprocess.Popen[bytes]) -> str:
    """Wait for a client process; its last stderr line when it failed, else ``""``."""
    with proc:  # closes the pipe
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace").strip()
        status = proc.wait()
    if status == 0:
        return ""
    return err.splitlines()[-1] if err else f"exit status {status}"


def _main() -> None:
    """A client process: PUT the backends of the job on stdin."""
    job = json.loads(sys.stdin.read())
    target = _Target(**job["target"])
    _put_backends(target, job["lo"], job["hi"], tuple(job["bound"]), tuple(job["others"]))


if __name__ == "__main__":
    _main()

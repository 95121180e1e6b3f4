"""The sample scene: what ``certrotate devstack`` seeds and ``certrotate demo`` plays through.

One builder serves both. ``mint_scene_pki`` mints a trusted root and intermediate that issue
``partner-mtls`` v1 and v2 and the unrelated ``billing-mtls``, and a rogue root that issues v3.
``bind_scene`` imports nothing: it pins each APIM service's ``partner-mtls`` entity to v1 and binds
backends to it, plus one unrelated backend on ``billing-mtls``. ``new_version_event`` builds a
real-shaped ``CertificateNewVersionCreated`` delivery.

``seed_scene`` (``certrotate devstack`` without ``--no-seed``) lays the scene out for manual
replay: v1 bound, v2 imported but not applied, v3 imported *disabled* (rotation is
level-triggered: an enabled v3 would be the newest version, so every event, v2's included, would
be judged on v3), the root in ``DIR/trust-anchors.pem``, and the events in ``DIR/events/``.
It also imports the inbound client certificate ``partner-caller`` (issued by the scene's CA)
and ``pin_inbound`` pins its thumbprint with ``validate-client-certificate`` in the global and
the ``orders`` API's policy documents (the ``env`` file names it in
``ROTATION_INBOUND_CERTIFICATES``).
Nothing secret is written there or printed: keys stay in Key Vault's state, events carry ids only.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.pki import Issued, make_key, mint_certificate, to_pkcs12
from devstack.stack import INBOUND_CERTIFICATE, TRUST_ANCHORS_FILE

if TYPE_CHECKING:
    from devstack.stack import Devstack

__all__ = [
    "CERTIFICATE",
    "EVENT_FILES",
    "INBOUND_API",
    "INBOUND_CERTIFICATE",
    "INBOUND_OPERATION",
    "INBOUND_PRODUCT",
    "OTHER_CERTIFICATE",
    "ScenePki",
    "SeededScene",
    "bind_scene",
    "cloud_event",
    "dead_letter",
    "enable_command",
    "is_empty",
    "mint_scene_pki",
    "new_version_event",
    "pin_inbound",
    "referenced_vaults",
    "scene_backend_url",
    "seed_if_empty",
    "seed_scene",
    "try_it",
]

CERTIFICATE = "partner-mtls"
OTHER_CERTIFICATE = "billing-mtls"
OTHER_BACKEND = "billing-api"
SEED_BACKENDS = ("orders-api", "payments-api")
INBOUND_API, INBOUND_OPERATION, INBOUND_PRODUCT = "orders", "create-order", "partners"
EVENTS_DIR = "events"
EVENT_FILES = {
    "v2": "v2-new-version.json",
    "v2-cloudevents": "v2-new-version.cloudevents.json",
    "v3": "v3-untrusted.json",
    "deadletter-v2": "deadletter-v2.json",
}
_YEAR = dt.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class ScenePki:
    """The scene's bundles as PKCS#12 bytes (keys stay in memory) and the trusted root."""

    root: Issued
    v1: bytes
    v2: bytes
    v3: bytes
    other: bytes
    partner_root: Issued  # a second trust anchor of ours, which the demo's backend does not trust
    v4: bytes  # issued under ``partner_root``: valid for certrotate, refused by the backend
    caller: bytes  # ``partner-caller``: the inbound client certificate callers present to APIM
    caller_renewal: bytes  # its renewal (issued an hour ago), as Key Vault would import it
    callers: tuple[Issued, Issued]  # the caller's certificate and its renewal, with their keys


def mint_scene_pki(now: dt.datetime) -> ScenePki:
    """A trusted root + intermediate issuing v1/v2/other and the inbound ``caller`` (all
    clientAuth), a rogue root issuing v3, and a second trusted root issuing v4 (the demo's
    backend trusts only the first root).

    v1 was issued 60 days before ``now``, v2 an hour before, the caller 30 days before (its
    renewal an hour before), each for a quarter year.
    """
    root = mint_certificate(
        "certrotate Demo Root CA", ca=True, not_before=now - _YEAR, not_after=now + 10 * _YEAR
    )
    inter = mint_certificate(
        "certrotate Demo Issuing CA", issuer=root, ca=True, path_length=0,
        not_before=now - _YEAR, not_after=now + 5 * _YEAR,
    )  # fmt: skip
    rogue = mint_certificate(
        "Rogue Root CA", key=make_key("ec", 256), ca=True, not_before=now - _YEAR
    )

    partner_root = mint_certificate(
        "certrotate Demo Partner Root CA", key=make_key("ec", 256), ca=True,
        not_before=now - _YEAR, not_after=now + 10 * _YEAR,
    )  # fmt: skip

    def leaf(
        issuer: Issued, chain: list[Issued], age_days: int, name: str = "partner-gw.demo.test"
    ) -> bytes:
        start = now - dt.timedelta(days=age_days, hours=1)
        cert = mint_certificate(name, issuer=issuer, not_before=start, not_after=start + _YEAR / 4)
        return to_pkcs12(cert, chain)

    def client(age_days: int) -> Issued:
        start = now - dt.timedelta(days=age_days, hours=1)
        return mint_certificate(
            "partner-caller.demo.test", issuer=inter, not_before=start, not_after=start + _YEAR / 4
        )

    callers = (client(30), client(0))
    return ScenePki(
        root=root,
        v1=leaf(inter, [inter, root], 60),
        v2=leaf(inter, [inter, root], 0),
        v3=leaf(rogue, [rogue], 0),
        other=leaf(inter, [inter, root], 10),
        partner_root=partner_root,
        v4=leaf(partner_root, [partner_root], 0),
        caller=to_pkcs12(callers[0], [inter, root]),
        caller_renewal=to_pkcs12(callers[1], [inter, root]),
        callers=callers,
    )


def scene_backend_url(backend: str, server: str | None = None) -> str:
    """The URL ``bind_scene`` gives ``backend``: ``{server}/{backend}``, or made up without one."""
    if server:
        return f"{server}/{backend}"
    return (
        "https://billing.demo.test" if backend == OTHER_BACKEND else f"https://{backend}.demo.test"
    )


def bind_scene(
    stack: Devstack,
    versions: dict[str, str],
    *,
    backends: tuple[str, ...] = SEED_BACKENDS,
    server: str | None = None,
) -> None:
    """In every APIM service: entities pinned to ``versions`` (by certificate name), ``backends``
    presenting ``partner-mtls``, and ``billing-api`` presenting ``billing-mtls``. The backends'
    URLs are made up (``https://{backend}.demo.test``) unless ``server`` (``https://host:port``,
    a real server such as the demo's nginx) serves them, each under ``/{backend}``.

    Raises:
        ValueError: a version in ``versions`` is not in the stack's Key Vault.
    """
    for service in stack.apim_services:
        sid = stack.service_id(service)
        for name in (CERTIFICATE, OTHER_CERTIFICATE):
            secret = f"{stack.vault_url}/secrets/{name}/{versions[name]}"
            stack.put_apim_certificate(service, name, secret)
        for backend in backends:
            stack.put_backend(
                service, backend,
                url=scene_backend_url(backend, server),
                certificate_ids=[f"{sid}/certificates/{CERTIFICATE}"],
            )  # fmt: skip
        stack.put_backend(
            service, OTHER_BACKEND,
            url=scene_backend_url(OTHER_BACKEND, server),
            certificate_ids=[f"{sid}/certificates/{OTHER_CERTIFICATE}"],
        )  # fmt: skip


def _global_policy(thumbprint: str) -> str:
    """The global policy as the portal saves it (CRLF, tabs): pins the caller, no ``<base />``."""
    lines = [
        "<!--",
        "    Global policy: runs before every API's. Partner callers present a client certificate;",
        "    validate-client-certificate pins it by thumbprint (certrotate keeps it current).",
        "-->",
        "<policies>",
        "\t<inbound>",
        (
            '\t\t<validate-client-certificate validate-revocation="false" validate-trust="true" '
            'validate-not-before="true" validate-not-after="true" ignore-error="false">'
        ),
        "\t\t\t<identities>",
        f'\t\t\t\t<identity thumbprint="{thumbprint}" />',
        "\t\t\t</identities>",
        "\t\t</validate-client-certificate>",
        '\t\t<set-header name="x-client-thumbprint" exists-action="override">',
        '\t\t\t<value>@(context.Request.Certificate?.Thumbprint ?? "none")</value>',
        "\t\t</set-header>",
        "\t</inbound>",
        "\t<backend>",
        "\t\t<forward-request />",
        "\t</backend>",
        "\t<outbound />",
        "\t<on-error />",
        "</policies>",
    ]
    return "\r\n".join(lines)


def _api_policy(thumbprint: str) -> str:
    """The ``orders`` API's policy as a template deploys it (LF, spaces): pins the caller too,
    with C# expressions holding ``"``, ``=>``, ``<`` and ``?:`` as written (``rawxml``)."""
    return f"""<policies>
    <inbound>
        <base />
        <!-- orders: partner callers only (also pinned at global scope) -->
        <validate-client-certificate validate-revocation="false" validate-trust="true" validate-not-before="true" validate-not-after="true" ignore-error="false">
            <identities>
                <identity thumbprint="{thumbprint}" />
            </identities>
        </validate-client-certificate>
        <choose>
            <when condition="@(context.Request.Headers.GetValueOrDefault("x-priority", "normal") == "high")">
                <set-header name="x-caller-expiry" exists-action="override">
                    <value>@{{ var left = (context.Request.Certificate?.NotAfter ?? DateTime.MinValue) - DateTime.UtcNow; return left.TotalDays < 30 ? "soon" : context.Request.Certificate.Subject.Split(',').FirstOrDefault(p => p.StartsWith("CN=")); }}</value>
                </set-header>
            </when>
        </choose>
    </inbound>
    <backend>
        <base />
    </backend>
    <outbound>
        <base />
    </outbound>
    <on-error>
        <base />
    </on-error>
</policies>"""


_PRODUCT_POLICY = """<policies>
    <inbound>
        <base />
        <!-- partners product: throttling only, no certificate pins -->
        <rate-limit calls="100" renewal-period="60" />
    </inbound>
    <backend>
        <base />
    </backend>
    <outbound>
        <base />
    </outbound>
    <on-error>
        <base />
    </on-error>
</policies>"""


def pin_inbound(stack: Devstack, thumbprint: str) -> None:
    """In every APIM service: the ``orders`` API (with operation ``create-order``, which has no
    policy of its own) and the ``partners`` product (a policy that pins nothing); the global
    and the ``orders`` policies pin ``thumbprint`` with ``validate-client-certificate``.
    """
    for service in stack.apim_services:
        stack.put_api(service, INBOUND_API, display_name="Orders", path="orders")
        stack.put_operation(
            service, INBOUND_API, INBOUND_OPERATION, method="POST", url_template="/orders"
        )
        stack.put_product(service, INBOUND_PRODUCT, display_name="Partners")
        stack.put_policy(service, _global_policy(thumbprint))
        stack.put_policy(service, _api_policy(thumbprint), api=INBOUND_API)
        stack.put_policy(service, _PRODUCT_POLICY, product=INBOUND_PRODUCT)


def _event_time(when: dt.datetime) -> str:
    """Event Grid's 7-digit fractional seconds."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def new_version_event(
    stack: Devstack, version: str, when: dt.datetime, *, certificate: str = CERTIFICATE
) -> dict[str, Any]:
    """One ``CertificateNewVersionCreated`` event in the Event Grid schema,
    ``data.Id`` on the stack's vault URL. Deliveries wrap it in a JSON array."""
    vault = f"/subscriptions/{stack.subscription_id}/resourceGroups/{stack.resource_group}"
    data = {
        "Id": f"{stack.vault_url}/certificates/{certificate}/{version}",
        "VaultName": stack.vault_name, "ObjectType": "Certificate", "ObjectName": certificate,
        "Version": version, "NBF": int(when.timestamp()) - 3600,
        "EXP": int(when.timestamp()) + 90 * 86400,
    }  # fmt: skip
    return {
        "id": str(uuid.uuid4()), "topic": f"{vault}/providers/Microsoft.KeyVault/vaults/{stack.vault_name}",
        "subject": certificate, "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": _event_time(when), "data": data, "dataVersion": "1", "metadataVersion": "1",
    }  # fmt: skip


def cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema, structured mode."""
    return {
        "id": event["id"], "source": event["topic"], "specversion": "1.0",
        "type": event["eventType"], "subject": event["subject"], "time": event["eventTime"],
        "data": event["data"],
    }  # fmt: skip


def dead_letter(event: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    """The event as Event Grid dead-letters it after 30 timed-out attempts."""
    return {
        **event,
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
        "lastDeliveryOutcome": "TimedOut",
        "publishTime": event["eventTime"],
        "lastDeliveryAttemptTime": _event_time(when + dt.timedelta(days=1)),
    }


@dataclass(frozen=True, slots=True)
class SeededScene:
    """What ``seed_scene`` made: Key Vault versions by role, and the files it wrote."""

    versions: dict[str, str]  # "v1", "v2", "v3", "billing-mtls", "partner-caller" -> version id
    trust_anchors: Path
    events: dict[str, Path]  # keys of EVENT_FILES -> path


def is_empty(stack: Devstack) -> bool:
    """True when the stack holds no certificate and no APIM certificate entity or backend."""
    with stack.state.lock:
        if stack.state.kv.certificates:
            return False
        return not any(s.certificates or s.backends for s in stack.state.services.values())


def seed_scene(
    stack: Devstack, *, now: dt.datetime, pki: ScenePki | None = None, server: str | None = None
) -> SeededScene:
    """Seed the scene into ``stack`` and write ``trust-anchors.pem`` and ``events/`` into its
    state directory; ``pki`` reuses minted certificates (tests), else they are minted at ``now``;
    ``server`` (``https://host:port``) serves the backends, as in ``bind_scene``.

    Raises:
        OSError: the state directory cannot be written.
    """
    pki = pki or mint_scene_pki(now)
    versions = {
        "v1": stack.import_certificate(CERTIFICATE, pki.v1),
        OTHER_CERTIFICATE: stack.import_certificate(OTHER_CERTIFICATE, pki.other),
    }
    bind_scene(
        stack,
        {CERTIFICATE: versions["v1"], OTHER_CERTIFICATE: versions[OTHER_CERTIFICATE]},
        server=server,
    )
    versions["v2"] = stack.import_certificate(CERTIFICATE, pki.v2)
    versions["v3"] = stack.import_certificate(CERTIFICATE, pki.v3, enabled=False)
    versions[INBOUND_CERTIFICATE] = stack.import_certificate(INBOUND_CERTIFICATE, pki.caller)
    with stack.state.lock:
        caller = stack.state.kv.get(INBOUND_CERTIFICATE, versions[INBOUND_CERTIFICATE])
    assert caller is not None
    pin_inbound(stack, caller.thumbprint)
    anchors = stack.state_dir / TRUST_ANCHORS_FILE
    anchors.write_bytes(pki.root.pem)
    return SeededScene(versions, anchors, _write_events(stack, versions, now))


def _write_events(stack: Devstack, versions: dict[str, str], now: dt.datetime) -> dict[str, Path]:
    directory = stack.state_dir / EVENTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    v2 = new_version_event(stack, versions["v2"], now)
    payloads: dict[str, object] = {
        "v2": [v2],
        "v2-cloudevents": cloud_event(v2),
        "v3": [new_version_event(stack, versions["v3"], now)],
        "deadletter-v2": [dead_letter(v2, now)],
    }
    paths = {key: directory / name for key, name in EVENT_FILES.items()}
    for key, path in paths.items():
        path.write_text(json.dumps(payloads[key], indent=2) + "\n", encoding="utf-8")
    return paths


def seed_if_empty(
    stack: Devstack, *, now: dt.datetime, pki: ScenePki | None = None, server: str | None = None
) -> SeededScene | None:
    """``seed_scene`` unless the stack already holds state (a persistent restart): then None.

    Raises:
        OSError: the state directory cannot be written.
    """
    if not is_empty(stack):
        return None
    return seed_scene(stack, now=now, pki=pki, server=server)


def referenced_vaults(stack: Devstack) -> set[str]:
    """The vault URLs (``https://host:port``) the APIM certificate entities' secret ids name.

    After a restart on other ports these differ from ``stack.vault_url``: certrotate matches
    bindings by vault URL, port included, so the saved bindings (and events) no longer apply.
    """
    urls: set[str] = set()
    with stack.state.lock:
        for service in stack.state.services.values():
            for entity in service.certificates.values():
                secret = str(entity.properties.get("keyVault", {}).get("secretIdentifier") or "")
                if "/secrets/" in secret:
                    urls.add(secret.split("/secrets/", 1)[0])
    return urls


def enable_command(version: str) -> str:
    """A ``curl`` line that enables ``partner-mtls`` ``version`` in the stand-in, built from the
    ``env`` variables (names only: the token is expanded by the shell, never printed)."""
    url = f"$ROTATION_VAULTS/certificates/{CERTIFICATE}/{version}?api-version=7.5"
    return (
        'curl -sf -o /dev/null --cacert "$ROTATION_DEVSTACK_CA_BUNDLE" -X PATCH'
        ' -H "Authorization: Bearer $ROTATION_DEVSTACK_TOKEN"'
        " -H 'Content-Type: application/json' -d '{\"attributes\":{\"enabled\":true}}'"
        f' "{url}"'
    )


def try_it(directory: Path, scene: SeededScene) -> list[str]:
    """The "try it" commands: source the env, plan, replay v2, enable v3 and replay its event."""
    env = shlex.quote(str(directory / "env"))
    v2, v3 = (shlex.quote(str(directory / EVENTS_DIR / EVENT_FILES[k])) for k in ("v2", "v3"))
    return [
        f"set -a; . {env}; set +a",
        f"certrotate plan --certificate {CERTIFICATE}",
        f"certrotate replay {v2}",
        "# v3 (from an untrusted root) waits disabled; enable it, then replay its event:",
        enable_command(scene.versions["v3"]),
        f"certrotate replay {v3}",
    ]

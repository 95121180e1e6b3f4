"""``certrotate demo``: the whole rotation story on the embedded local stack, in seconds.

It starts the devstack (Key Vault and APIM/ARM stand-ins over TLS on loopback, ephemeral, free
ports), mints a private CA, imports certificate v1, binds it in two APIM services, and then wires
the *real* service (real adapters, real SDK clients) through ``bootstrap.build_service``. Four
real-shaped Event Grid events follow, each parsed by ``rotation.intake.events``:

1. a new valid v2                        -> ``applied`` (every binding moves to v2)
2. the same event again                  -> ``already_current`` (nothing written)
3. a late event for v1                   -> ``superseded`` (never roll back)
4. a v3 from an issuer nobody trusts     -> ``rejected`` (with its finding codes)
5. (nginx available) a v4 that chains to a trusted anchor the backend does not trust
                                          -> ``rejected`` by the canary (``canary.refused``)
6. the inbound half: ``partner-caller``, the client certificate callers present to APIM, is
   pinned by ``validate-client-certificate`` in the global and the ``orders`` API policies; its
   renewal arrives                        -> ``applied`` (its thumbprint is added next to the
   old one: callers with either certificate get in, checked at the gateway stand-in)
7. eight days later the reconcile sweep   -> ``applied`` (the overlap has passed: the old
   thumbprint is removed, a caller presenting it is refused)

When the Debian ``nginx`` is installed, the backends are served by a real nginx on loopback that
requires a client certificate from the demo root (``devstack.nginx``), and the canary runs in
``enforce`` mode; when nginx cannot start, the demo says so and skips chapter 5.

Each step checks its decision and what the backends present afterwards, so the demo doubles as
a smoke test (``run_demo`` returns False if anything differs). The audit trail goes to a JSON
Lines file. Nothing secret (keys, PFX/PEM bodies, the devstack token) is printed or logged.
The scene (certificates, bindings, event shape) is ``devstack.seed``'s, which ``certrotate
devstack`` also seeds for manual replay.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from devstack.gateway import Gateway, call, policy_thumbprints, stored_policy, thumbprint_of
from devstack.gateway import PolicyScope as GatewayScope
from devstack.nginx import Nginx, NginxError, start_nginx
from devstack.seed import (
    CERTIFICATE,
    INBOUND_API,
    OTHER_CERTIFICATE,
    ScenePki,
    bind_scene,
    mint_scene_pki,
    new_version_event,
    pin_inbound,
)
from devstack.stack import INBOUND_CERTIFICATE, Devstack
from devstack.tls import mint_server_tls
from rotation.adapters.auditlog import JsonLinesAuditSink
from rotation.bootstrap import build_service
from rotation.config import Settings
from rotation.domain.errors import RotationError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.domain.policies import find_thumbprints
from rotation.intake.events import parse_payload
from rotation.service import RotationService

__all__ = ["CERTIFICATE", "DemoStep", "run_demo"]

_BACKENDS = ("orders-api", "payments-api", "inventory-api")
_OVERLAP = dt.timedelta(days=7)  # ROTATION_INBOUND_OVERLAP_DAYS's default
_ADMITTED = 200
# (service, backend) -> (entity, version, thumbprint)
Snapshot = dict[tuple[str, str], tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One chapter of the story: the event to send and the decision it must produce."""

    title: str
    story: str
    version_key: str  # "v1" | "v2" | "v3" | "v4"
    expected: Decision
    changes: bool  # whether the backends must present something new afterwards
    finding: str | None = None  # a finding code the decision must carry


STEPS = (
    DemoStep("1. A new, valid version arrives", "Key Vault created v2 (same CA, fresh key).", "v2", Decision.APPLIED, True),
    DemoStep("2. Event Grid delivers the same event again", "At-least-once delivery: a duplicate.", "v2", Decision.ALREADY_CURRENT, False),
    DemoStep("3. A late event for v1", "An old event arrives after v2 went live.", "v1", Decision.SUPERSEDED, False),
    DemoStep("4. v3 from an issuer nobody trusts", "Someone imported a certificate from a rogue CA.", "v3", Decision.REJECTED, False),
)  # fmt: skip
CANARY_STEP = DemoStep(
    "5. v4 chains to a trusted anchor, but the backend does not trust it",
    "v4 comes from another root in our trust anchors; nginx accepts only the demo root.",
    "v4", Decision.REJECTED, False, "canary.refused",
)  # fmt: skip


def _snapshot(stack: Devstack) -> Snapshot:
    """What every backend presents, read from the APIM stand-in's own state (not via certrotate)."""
    view: Snapshot = {}
    with stack.state.lock:
        for name in stack.apim_services:
            service = stack.state.service(name)
            if service is None:
                continue
            for backend in service.backends.values():
                for ref in backend.properties.get("credentials", {}).get("certificateIds", []):
                    entity_id = str(ref).rsplit("/", 1)[-1]
                    entity = service.certificates.get(entity_id.lower())
                    props = entity.properties if entity else {}
                    secret = str(props.get("keyVault", {}).get("secretIdentifier") or "")
                    path = secret.split("/secrets/", 1)[-1].split("/")
                    version = path[1] if len(path) > 1 else "(versionless)"
                    thumbprint = str(props.get("thumbprint", "?"))
                    view[(name, backend.name)] = (entity_id, version, thumbprint)
    return view


def _table(title: str, view: Snapshot, before: Snapshot | None = None) -> Table:
    """One row per backend, grouped by APIM service; rows that changed since ``before`` in green."""
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in ("service / backend", "entity", "version", "thumbprint (SHA-1)"):
        table.add_column(column, no_wrap=True)
    current = None
    for (service, backend), (entity, version, thumb) in sorted(view.items()):
        if service != current:
            if current is not None:
                table.add_section()
            table.add_row(service, style="bold")
            current = service
        changed = before is not None and before.get((service, backend)) != (entity, version, thumb)
        style = "bold green" if changed else None
        table.add_row(f"  {backend}", entity, version[:8], f"{thumb[:12]}…", style=style)
    return table


class _DemoClock:
    """The service's clock: the real time plus however far the story has jumped ahead."""

    def __init__(self, now: Callable[[], dt.datetime]) -> None:
        self._now = now
        self.ahead = dt.timedelta(0)

    def now(self) -> dt.datetime:
        """Now, as the story tells it."""
        return self._now() + self.ahead


@dataclass(slots=True)
class _Run:
    """State shared by the steps of one demo run."""

    stack: Devstack
    service: RotationService
    vaults: tuple[str, ...]
    versions: dict[str, str]
    pki: ScenePki
    console: Console
    clock: _DemoClock
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    canary: bool = False  # the backends are a real nginx and the canary enforces

    def version(self, key: str) -> str:
        """The Key Vault version id of ``key`` (v1/v2/v3), importing it on first use."""
        if key not in self.versions:
            self.versions[key] = self.stack.import_certificate(CERTIFICATE, getattr(self.pki, key))
        return self.versions[key]

    def payload(self, key: str) -> list[dict[str, Any]]:
        """The delivery for version ``key``; asking twice redelivers the very same event."""
        if key not in self.sent:
            self.sent[key] = [new_version_event(self.stack, self.version(key), self.clock.now())]
        return self.sent[key]

    def snapshot(self) -> Snapshot:
        """What every backend presents now."""
        return _snapshot(self.stack)


def _moved_correctly(before: Snapshot, after: Snapshot, version: str) -> bool:
    """Every backend of the rotated certificate now presents ``version``; the rest did not move."""
    for key, (entity, _, _) in before.items():
        if entity.startswith(CERTIFICATE):
            if after.get(key, ("", "", ""))[1] != version:
                return False
        elif after.get(key) != before[key]:
            return False
    return True


def _handle(run: _Run, payload: list[dict[str, Any]]) -> tuple[Decision, tuple[str, ...], str]:
    """Parse the payload with the intake and hand the event to the real service."""
    try:
        events: list[KeyVaultEvent] = list(parse_payload(payload, allowed_vault_urls=run.vaults))
        record = run.service.handle(events[0], trigger=Trigger.CLI)
    except RotationError as exc:
        return Decision.FAILED, (), f"{type(exc).__name__}: {exc}"
    return record.decision, tuple(record.findings), record.error or ""


def _play(run: _Run, step: DemoStep) -> bool:
    """Tell one chapter: send its event, show the decision and what the backends present now."""
    console = run.console
    console.rule(step.title, align="left")
    version = run.version(step.version_key)
    console.print(f"{step.story} Event: {CERTIFICATE} version {version[:8]}.", markup=False)
    before = run.snapshot()
    decision, findings, error = _handle(run, run.payload(step.version_key))
    after = run.snapshot()
    moved = _moved_correctly(before, after, version) if step.changes else after == before
    ok = decision is step.expected and moved and (not step.finding or step.finding in findings)
    _verdict(run, ok, decision, step.expected)
    if findings:
        console.print(f"  findings: {', '.join(findings)}", markup=False)
    if error:
        console.print(f"  error: {error}", markup=False)
    if step.changes:
        console.print(
            _table("After: what each backend presents (changed rows in green)", after, before)
        )
    else:
        console.print(
            "  APIM unchanged." if after == before else "  [red]APIM changed unexpectedly![/]"
        )
    return ok


# --- the inbound half -------------------------------------------------------------------------


def _scopes(stack: Devstack) -> list[tuple[str, GatewayScope]]:
    """The policy documents the scene pins the caller in: global and the ``orders`` API's."""
    return [
        (label, scope)
        for service in stack.apim_services
        for label, scope in (
            (f"{service} global", GatewayScope(service)),
            (f"{service} api {INBOUND_API}", GatewayScope(service, api=INBOUND_API)),
        )
    ]


def _identities(title: str, run: _Run) -> Table:
    """One row per policy document pinning the caller: the thumbprints it pins, marked by
    which certificate they belong to."""
    names = {
        thumbprint_of(issued.cert): label
        for issued, label in zip(run.pki.callers, ("current", "renewed"), strict=True)
    }
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in ("policy document", "pinned thumbprints (SHA-1)"):
        table.add_column(column, no_wrap=True)
    for label, scope in _scopes(run.stack):
        pinned = [p.thumbprint for p in find_thumbprints(stored_policy(run.stack, scope) or "")]
        shown = ", ".join(f"{t[:8]}… ({names.get(t, 'other')})" for t in pinned)
        table.add_row(label, shown or "-")
    return table


def _at_gateway(run: _Run, gateway: Gateway, when: str) -> tuple[int, int]:
    """What the gateway answers a caller presenting the current and the renewed certificate."""
    current, renewed = run.pki.callers
    answers = (call(gateway, current), call(gateway, renewed))
    run.console.print(
        f"  {when}, the gateway answers: current certificate {answers[0]}, renewed "
        f"certificate {answers[1]}",
        markup=False,
    )
    return answers


def _verdict(run: _Run, ok: bool, decision: Decision, expected: Decision) -> bool:
    """Show a chapter's decision against the expected one, ticked when ``ok``; return ``ok``."""
    mark = "[green]✓[/]" if ok else "[bold red]✗[/]"
    run.console.print(f"{mark} decision: [bold]{decision}[/] (expected {expected})")
    return ok


def _inbound(run: _Run) -> list[bool]:
    """Chapters 6 and 7: the caller's renewal is added next to the old identity, and after the
    overlap the reconcile sweep retires the old one; a gateway stand-in enforcing the first
    service's global policy shows what a caller sees."""
    console, stack = run.console, run.stack
    first = _scopes(stack)[0][1]
    with Gateway(policy_thumbprints(stack, first), stack.tls) as gateway:
        console.rule("6. A partner caller's certificate is renewed", align="left")
        console.print(
            f"Callers present {INBOUND_CERTIFICATE}; validate-client-certificate pins its "
            "thumbprint. Key Vault created the renewal.",
            markup=False,
        )
        before = _at_gateway(run, gateway, "Before")
        version = stack.import_certificate(INBOUND_CERTIFICATE, run.pki.caller_renewal)
        payload = [
            new_version_event(stack, version, run.clock.now(), certificate=INBOUND_CERTIFICATE)
        ]
        decision, _, error = _handle(run, payload)
        if error:
            console.print(f"  error: {error}", markup=False)
        during = _at_gateway(run, gateway, "After")
        console.print(_identities("After: both identities pinned (the overlap)", run))
        added = _verdict(
            run,
            decision is Decision.APPLIED
            and before[0] == _ADMITTED
            and before[1] != _ADMITTED
            and during == (_ADMITTED, _ADMITTED),
            decision,
            Decision.APPLIED,
        )

        console.rule("7. Eight days later: the reconcile sweep", align="left")
        run.clock.ahead += _OVERLAP + dt.timedelta(days=1)
        console.print(
            f"The {_OVERLAP.days}-day overlap has passed since the renewal was added.",
            markup=False,
        )
        record = _sweep(run)
        after = _at_gateway(run, gateway, "After")
        console.print(_identities("After: the old identity is retired", run))
        swept = record.decision if record else Decision.FAILED
        retired = _verdict(
            run,
            swept is Decision.APPLIED and after[0] != _ADMITTED and after[1] == _ADMITTED,
            swept,
            Decision.APPLIED,
        )
    return [added, retired]


def _sweep(run: _Run) -> AuditRecord | None:
    """Run the reconcile sweep; the inbound certificate's record (None when it failed)."""
    try:
        records = run.service.reconcile(trigger=Trigger.CLI)
    except RotationError as exc:
        run.console.print(f"  error: {type(exc).__name__}: {exc}", markup=False)
        return None
    return next((r for r in records if r.certificate == INBOUND_CERTIFICATE), None)


def _system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextmanager
def _backend(console: Console, directory: Path, pki: ScenePki) -> Iterator[Nginx | None]:
    """A real nginx that trusts only the demo root, or None (said on screen) when it cannot
    start."""
    client_ca = directory / "backend-ca.pem"
    client_ca.write_bytes(pki.root.pem)
    try:
        nginx = start_nginx(
            directory / "nginx", mint_server_tls(directory / "nginx-tls"), client_ca
        )
    except (NginxError, OSError) as exc:
        console.print(
            f"nginx could not start ({exc}); skipping the canary scene (chapter 5).", markup=False
        )
        yield None
        return
    try:
        yield nginx
    finally:
        nginx.stop()


@contextmanager
def _stage(
    console: Console, strategy: str, audit_log: Path, now: Callable[[], dt.datetime]
) -> Iterator[_Run]:
    """Start the devstack (and nginx as the backends), seed v1 and the bindings, and wire the
    real service against them."""
    pki = mint_scene_pki(now())
    with (
        tempfile.TemporaryDirectory(prefix="certrotate-demo-") as tmp,
        Devstack.start(None, ephemeral=True) as stack,
        _backend(console, Path(tmp), pki) as nginx,
    ):
        anchors = Path(tmp) / "trust-anchors.pem"
        anchors.write_bytes(pki.root.pem + pki.partner_root.pem)
        versions = {
            "v1": stack.import_certificate(CERTIFICATE, pki.v1),
            OTHER_CERTIFICATE: stack.import_certificate(OTHER_CERTIFICATE, pki.other),
            INBOUND_CERTIFICATE: stack.import_certificate(INBOUND_CERTIFICATE, pki.caller),
        }
        pin_inbound(stack, thumbprint_of(pki.callers[0].cert))
        bind_scene(
            stack,
            {CERTIFICATE: versions["v1"], OTHER_CERTIFICATE: versions[OTHER_CERTIFICATE]},
            backends=_BACKENDS,
            server=f"https://localhost:{nginx.port}" if nginx else None,
        )
        extra = {"ROTATION_TRUST_ANCHORS": str(anchors), "ROTATION_STRATEGY": strategy}
        if nginx is not None:
            stack.canary_mode = "enforce"
            extra["ROTATION_CANARY_SERVER_CA"] = str(Path(tmp) / "nginx-tls" / "ca.pem")
        settings = Settings.from_env(stack.env() | extra)
        clock = _DemoClock(now)
        service = build_service(settings, audit=JsonLinesAuditSink(audit_log), clock=clock)
        run = _Run(stack, service, settings.vaults, versions, pki, console, clock)
        run.canary = nginx is not None
        backends = f"nginx on localhost:{nginx.port}, canary enforce" if nginx else "made up"
        console.print(
            f"Local stack: Key Vault {stack.vault_url}, APIM services {', '.join(stack.apim_services)}; "
            f"strategy {strategy}; backends: {backends}; trust anchors: the demo root CAs "
            f"({anchors.name}).",
            markup=False,
        )
        console.print(_table("Before: what each backend presents", run.snapshot()))
        console.print(_identities("Before: the caller identities the policies pin", run))
        yield run


def run_demo(
    *,
    audit_log: Path,
    strategy: str = "pin",
    console: Console | None = None,
    now: Callable[[], dt.datetime] = _system_now,
) -> bool:
    """Run the story; True when every step produced the expected decision and APIM state.

    Raises:
        OSError: the audit log cannot be written, or the stack could not bind its ports.
        RotationError: the service could not be wired (e.g. ``ConfigError``).
    """
    console = console or Console(highlight=False)
    audit_log.write_text("", encoding="utf-8")
    results: list[bool] = []
    with _stage(console, strategy, audit_log, now) as run:
        steps = (*STEPS, CANARY_STEP) if run.canary else STEPS
        results.extend(_play(run, step) for step in steps)
        results.extend(_inbound(run))
    events = [json.loads(line)["event"] for line in audit_log.read_text("utf-8").splitlines()]
    targets = events.count("rotation.target")
    console.rule()
    verdict = (
        f"[green]All {len(results)} decisions as expected.[/]"
        if all(results)
        else "[bold red]Some steps did not go as expected.[/]"
    )
    console.print(verdict)
    console.print(
        f"Audit log: {audit_log} ({len(events) - targets} decision records + {targets} "
        "per-target records, JSON Lines)",
        markup=False,
    )
    return all(results)

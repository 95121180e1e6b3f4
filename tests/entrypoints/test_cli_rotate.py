"""`certrotate replay`, `certrotate plan` and `certrotate demo` through click's CliRunner."""

from __future__ import annotations

import base64
import json
import re
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from devstack.pki import Issued, make_key, mint_certificate, mint_chain, to_pkcs12
from devstack.stack import Devstack
from rotation import bootstrap
from rotation.adapters.audit import AUDIT_FIELDS
from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import AuditRecord, Decision, KeyVaultEvent, Trigger
from rotation.entrypoints.cli import cli
from rotation.entrypoints.cli.wiring import Wiring
from rotation.testing import (
    FakeApimGateway,
    FakeCertificateSource,
    FakeValidator,
    FrozenClock,
    MemoryAuditSink,
)

VAULT = "https://kv-replay.vault.azure.net"
SERVICE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-a"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V1 = "11111111aaaaaaaaaaaaaaaaaaaaaaaa"
V2 = "22222222bbbbbbbbbbbbbbbbbbbbbbbb"
REQUIRED_KEYS = {
    "location",
    "event_id",
    "certificate",
    "version",
    "decision",
    "findings",
    "targets",
}


def eg_event(
    version: str, event_id: str | None = None, *, name: str = "partner-mtls"
) -> dict[str, Any]:
    """A CertificateNewVersionCreated event in the Event Grid schema."""
    return {
        "id": event_id or f"id-{version}",
        "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-replay",
        "subject": name,
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "eventTime": "2026-03-02T08:15:42.1234567Z",
        "data": {
            "Id": f"{VAULT}/certificates/{name}/{version}",
            "VaultName": "kv-replay",
            "ObjectType": "Certificate",
            "ObjectName": name,
            "Version": version,
            "NBF": 1772438400,
            "EXP": 1804060800,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def cloud_event(version: str) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema."""
    event = eg_event(version)
    return {
        "id": event["id"],
        "source": event["topic"],
        "specversion": "1.0",
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "data": event["data"],
    }


def dead_lettered(version: str) -> dict[str, Any]:
    """An Event Grid dead-letter entry: the original event plus the dead-letter fields."""
    return eg_event(version) | {
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
        "lastDeliveryOutcome": "TimedOut",
        "publishTime": "2026-03-02T08:15:42.5000000Z",
    }


class ScriptedService:
    """An EventHandler whose decision per version is scripted; exceptions are raised."""

    def __init__(self, script: dict[str, Decision | Exception] | None = None) -> None:
        self.script = script or {}
        self.handled: list[KeyVaultEvent] = []
        self.batches = 0

    def batch(self, **_options: object) -> ScriptedService:
        """What ``certrotate replay`` hands its events to (``RotationService.batch``)."""
        self.batches += 1
        return self

    def handle(self, event: KeyVaultEvent, *, trigger: Trigger) -> AuditRecord:
        self.handled.append(event)
        outcome = self.script.get(event.version, Decision.APPLIED)
        if isinstance(outcome, Exception):
            raise outcome
        return AuditRecord(
            event=f"rotation.{outcome}",
            decision=outcome,
            trigger=trigger,
            event_id=event.event_id,
            certificate=event.object_name,
            version=event.version,
            findings=("chain.untrusted",) if outcome is Decision.REJECTED else (),
        )


@pytest.fixture(name="anchors", scope="session")
def _anchors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("anchors") / "anchors.pem"
    path.write_bytes(mint_certificate("Replay Test Root", key=make_key("ec", 256), ca=True).pem)
    return path


@pytest.fixture(name="env")
def _env(anchors: Path) -> dict[str, str]:
    return {
        "ROTATION_VAULTS": VAULT,
        "ROTATION_APIM_SERVICES": SERVICE,
        "ROTATION_TRUST_ANCHORS": str(anchors),
    }


@pytest.fixture(name="wiring")
def _wiring() -> Wiring:
    """The factories the CLI builds with, handed to it as click's context object."""
    return Wiring()


@pytest.fixture(name="audit")
def _audit(wiring: Wiring) -> MemoryAuditSink:
    """The audit sink the CLI wires (and hands the service)."""
    sink = MemoryAuditSink()
    wiring.build_audit_sink = lambda _settings: sink
    return sink


@pytest.fixture(name="scripted")
def _scripted(wiring: Wiring, audit: MemoryAuditSink) -> ScriptedService:
    """The CLI's service factory returns a scripted service."""
    service = ScriptedService()
    service.settings = None  # type: ignore[attr-defined]

    def build(settings, **_kwargs):
        service.settings = settings  # type: ignore[attr-defined]
        return service

    wiring.build_service = build
    return service


def write_array(path: Path, events: list[Any]) -> Path:
    path.write_text(json.dumps(events), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


class TestReplayShapes:
    def test_json_array_file_prints_one_object_per_event(self, wiring, tmp_path, env, scripted):
        """--json prints one JSON object per event with the documented keys."""
        path = write_array(tmp_path / "batch.json", [eg_event("a1"), eg_event("b2")])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", "--json", str(path)])

        lines = json_lines(result.stdout)
        assert result.exit_code == 0, result.output
        assert [x["version"] for x in lines] == ["a1", "b2"]
        assert all(x.keys() >= REQUIRED_KEYS for x in lines)
        assert lines[0]["location"] == "batch.json[0]"
        assert lines[0]["decision"] == "applied"

    def test_json_lines_of_both_schemas(self, wiring, tmp_path, env, scripted):
        """JSON Lines mixing the Event Grid and CloudEvents schemas are all replayed."""
        path = write_lines(tmp_path / "events.jsonl", [eg_event("a1"), cloud_event("b2")])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", "--json", str(path)])

        assert result.exit_code == 0, result.output
        assert [e.schema for e in scripted.handled] == ["eventgrid", "cloudevents"]

    def test_dead_letter_file_and_single_object(self, wiring, tmp_path, env, scripted):
        """A saved dead-letter blob and a single-object file replay like any other file."""
        blob = write_array(tmp_path / "5d1c.json", [dead_lettered("a1"), dead_lettered("b2")])
        single = tmp_path / "one.json"
        single.write_text(json.dumps(eg_event("c3")), encoding="utf-8")

        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["replay", "--json", str(blob), str(single)]
        )

        assert result.exit_code == 0, result.output
        assert [e.version for e in scripted.handled] == ["a1", "b2", "c3"]
        assert scripted.handled[0].deadletter is not None
        assert scripted.handled[0].deadletter.reason == "MaxDeliveryAttemptsExceeded"


class TestReplayOutcomes:
    def test_malformed_event_in_the_middle_is_reported_and_replay_goes_on(
        self, wiring, tmp_path, env, scripted
    ):
        """A malformed event names file, index and field on stderr; later events still run; exit 1."""
        bad = eg_event("b2")
        bad["data"]["Id"] = "https://evil.example.com/certificates/partner-mtls/b2"
        path = write_lines(
            tmp_path / "mixed.jsonl", [eg_event("a1"), bad, "{not json", eg_event("c3")]
        )

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", "--json", str(path)])

        lines = json_lines(result.stdout)
        assert result.exit_code == 1
        assert [e.version for e in scripted.handled] == ["a1", "c3"]
        assert [x["decision"] for x in lines] == ["applied", "malformed", "malformed", "applied"]
        assert "mixed.jsonl[1]" in result.stderr
        assert "data.Id" in result.stderr
        assert "mixed.jsonl[2]" in result.stderr

    def test_malformed_event_is_audited_without_echoing_the_payload(
        self, wiring, tmp_path, env, scripted, audit
    ):
        """A malformed event leaves an `event.malformed` audit record naming where it was."""
        bad = eg_event("b2")
        bad["data"]["Version"] = "not/a-version"
        path = write_lines(tmp_path / "bad.jsonl", [bad])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", str(path)])

        assert result.exit_code == 1
        assert [r.event for r in audit.records] == ["event.malformed"]
        assert audit.records[0].decision is Decision.IGNORED
        assert "bad.jsonl[0]" in (audit.records[0].message or "")
        assert "data.Version" in (audit.records[0].error or "")
        assert "not/a-version" not in (audit.records[0].error or "")

    def test_rejection_is_a_correct_outcome(self, wiring, tmp_path, env, scripted):
        """Only rejections and already-current decisions exit 0."""
        scripted.script = {"a1": Decision.REJECTED, "b2": Decision.ALREADY_CURRENT}
        path = write_array(tmp_path / "e.json", [eg_event("a1"), eg_event("b2")])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", "--json", str(path)])

        assert result.exit_code == 0, result.output
        assert json_lines(result.stdout)[0]["findings"] == ["chain.untrusted"]

    def test_transient_error_marks_event_failed_and_continues(
        self, wiring, tmp_path, env, scripted
    ):
        """A transient error fails that event only; the replay continues and exits 1."""
        scripted.script = {
            "a1": TransientDependencyError("ARM said 503", service="apim", operation="list")
        }
        path = write_array(tmp_path / "e.json", [eg_event("a1"), eg_event("b2")])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", "--json", str(path)])

        lines = json_lines(result.stdout)
        assert result.exit_code == 1
        assert [x["decision"] for x in lines] == ["failed", "applied"]
        assert "503" in lines[0]["error"]
        assert "e.json[0]" in result.stderr

    def test_summary_table_counts_decisions(self, wiring, tmp_path, env, scripted):
        """Without --json a summary table counts each decision."""
        scripted.script = {"b2": Decision.REJECTED}
        path = write_array(tmp_path / "e.json", [eg_event("a1"), eg_event("b2"), eg_event("c3")])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", str(path)])

        assert result.exit_code == 0, result.output
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
                for line in result.stdout.splitlines() if line.count("│") == 3}  # fmt: skip
        assert rows["applied"] == "2"
        assert rows["rejected"] == "1"
        assert rows["total"] == "3"
        assert "rejected at e.json[1]: chain.untrusted" in result.output

    def test_dry_run_forces_dry_run_settings(self, wiring, tmp_path, env, scripted):
        """--dry-run builds the service with dry_run=True whatever the environment says."""
        path = write_array(tmp_path / "e.json", [eg_event("a1")])

        result = CliRunner(env=env | {"ROTATION_DRY_RUN": "false"}).invoke(
            cli, obj=wiring, args=["replay", "--dry-run", "--json", str(path)]
        )

        assert result.exit_code == 0, result.output
        assert scripted.settings.dry_run is True


class TestReplayUsage:
    @pytest.mark.parametrize(
        "args",
        [
            ["replay"],
            ["replay", "--deadletter-container", "deadletter"],
            ["replay", "does-not-exist.json"],
        ],
    )
    def test_usage_errors_exit_2(self, wiring, env, scripted, args):
        """Missing inputs, a container without credentials, or a missing file exit 2."""
        result = CliRunner(env=env).invoke(cli, obj=wiring, args=args)

        assert result.exit_code == 2
        assert scripted.handled == []

    def test_configuration_error_lists_problems_and_exits_2(self, tmp_path):
        """Missing settings are listed at once, without a traceback, exit 2."""
        path = write_array(tmp_path / "e.json", [eg_event("a1")])

        result = CliRunner(env={"ROTATION_VAULTS": None, "ROTATION_APIM_SERVICES": None,
                                "ROTATION_TRUST_ANCHORS": None}).invoke(cli, ["replay", str(path)])  # fmt: skip

        assert result.exit_code == 2
        assert "ROTATION_VAULTS" in result.stderr
        assert "ROTATION_TRUST_ANCHORS" in result.stderr
        assert "Traceback" not in result.output

    def test_help_says_malformed_input_counts_as_failure(self):
        """--help documents the exit codes, including malformed input → 1."""
        result = CliRunner().invoke(cli, ["replay", "--help"])

        assert result.exit_code == 0
        assert "malformed" in result.output
        assert "Exit status" in result.output


# --- the real service over the fakes -------------------------------------------------------------


@dataclass
class FakeWorld:
    """The real RotationService over rotation.testing fakes: v1 bound, v2 newest in the vault."""

    source: FakeCertificateSource
    gateway: FakeApimGateway
    audit: MemoryAuditSink


@pytest.fixture(name="chain", scope="session")
def _chain() -> list[Issued]:
    return mint_chain(depth=3, kind="ec", size=256, not_before=NOW - timedelta(days=60))


@pytest.fixture(name="world")
def _world(wiring: Wiring, chain: list[Issued], audit: MemoryAuditSink) -> FakeWorld:
    """Wire the CLI's service to fakes through bootstrap.build_service's own keywords."""
    leaf, inter = chain[0], chain[1]
    source = FakeCertificateSource()
    for version, days in ((V1, 50), (V2, 1)):
        source.add_version(
            VAULT, "partner-mtls", version, created=NOW - timedelta(days=days),
            secret=to_pkcs12(leaf, [inter]), leaf=leaf.cert,
        )  # fmt: skip
    gateway = FakeApimGateway(source)
    gateway.add_certificate(
        SERVICE, "partner-mtls", secret_identifier=f"{VAULT}/secrets/partner-mtls/{V1}"
    )
    gateway.add_backend(SERVICE, "orders-api", [f"{SERVICE}/certificates/partner-mtls"])

    def build(settings, **kwargs):
        return bootstrap.build_service(
            settings, source=source, gateway=gateway, validator=FakeValidator(),
            clock=FrozenClock(NOW), **kwargs,
        )  # fmt: skip

    wiring.build_service = build
    return FakeWorld(source, gateway, audit)


def duplicates_file(path: Path, count: int) -> Path:
    """`count` events for v2 as JSON Lines: one new event and count-1 redeliveries."""
    line = json.dumps(eg_event(V2, "same-event"))
    with path.open("w", encoding="utf-8") as out:
        for _ in range(count):
            out.write(line + "\n")
    return path


class TestReplayWithTheService:
    def test_thousand_duplicates_write_apim_once(self, wiring, tmp_path, env, world):
        """1,000 deliveries of one event: one applied, 999 already current, one APIM write."""
        path = duplicates_file(tmp_path / "dupes.jsonl", 1000)

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", str(path)])

        assert result.exit_code == 0, result.output
        assert [w.op for w in world.gateway.updates] == ["put_certificate"]
        decisions = [r.decision for r in world.audit.records if r.event != "rotation.target"]
        assert decisions.count(Decision.APPLIED) == 1
        assert decisions.count(Decision.ALREADY_CURRENT) == 999

    def test_duplicates_share_one_apim_listing(self, wiring, tmp_path, env, world):
        """replay hands its events to RotationService.batch: after the write, the duplicates
        plan from one APIM listing (the first event lists, the write drops it, the second event
        lists again, the other 998 reuse it)."""
        path = duplicates_file(tmp_path / "dupes.jsonl", 1000)

        quiet = {**env, "ROTATION_CANARY": "off"}  # the canary lists the backends it probes
        result = CliRunner(env=quiet).invoke(cli, obj=wiring, args=["replay", str(path)])

        assert result.exit_code == 0, result.output
        assert world.gateway.calls["list_certificates"] == 2
        assert world.gateway.calls["list_backends"] == 0  # pin lists no backends
        assert world.source.calls["list_certificate_versions"] == 1000

    def test_listing_max_age_zero_lists_for_every_event(self, wiring, tmp_path, env, world):
        """--listing-max-age 0 turns sharing off: every event lists APIM, as the trigger does;
        the decisions are the same."""
        path = duplicates_file(tmp_path / "dupes.jsonl", 20)

        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["replay", "--listing-max-age", "0", str(path)]
        )

        assert result.exit_code == 0, result.output
        assert world.gateway.calls["list_certificates"] == 20
        assert [w.op for w in world.gateway.updates] == ["put_certificate"]

    def test_negative_listing_max_age_is_a_usage_error(self, tmp_path, env):
        """A negative max age is refused before anything runs (exit 2, naming the option)."""
        path = duplicates_file(tmp_path / "dupes.jsonl", 1)

        result = CliRunner(env=env).invoke(cli, ["replay", "--listing-max-age", "-1", str(path)])

        assert result.exit_code == 2
        assert "--listing-max-age" in result.output

    def test_dry_run_writes_nothing_and_reports_the_targets(self, wiring, tmp_path, env, world):
        """--dry-run decides and lists the targets but makes no APIM write."""
        path = write_array(tmp_path / "e.json", [eg_event(V2)])

        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["replay", "--dry-run", "--json", str(path)]
        )

        (line,) = json_lines(result.stdout)
        assert result.exit_code == 0, result.output
        assert world.gateway.updates == []
        assert line["dry_run"] is True
        assert line["targets"][0]["to"] == f"{VAULT}/secrets/partner-mtls/{V2}"

    def test_late_event_is_superseded(self, wiring, tmp_path, env, world):
        """After v2 is applied, a late v1 event is superseded and changes nothing."""
        path = write_array(tmp_path / "e.json", [eg_event(V2), eg_event(V1)])

        result = CliRunner(env=env).invoke(cli, obj=wiring, args=["replay", "--json", str(path)])

        assert result.exit_code == 0, result.output
        assert [x["decision"] for x in json_lines(result.stdout)] == ["applied", "superseded"]
        assert len(world.gateway.updates) == 1


class TestPlan:
    def test_plan_lists_targets_and_writes_nothing(self, wiring, env, world):
        """plan shows per target what would move from v1 to v2, and writes nothing."""
        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["plan", "--certificate", "partner-mtls", "--json"]
        )

        body = json.loads(result.stdout)
        assert result.exit_code == 0, result.output
        assert body["version"] == V2
        assert body["targets"][0]["service"] == "apim-a"
        assert body["targets"][0]["from"].endswith(V1)
        assert body["targets"][0]["to"].endswith(V2)
        assert world.gateway.updates == []
        assert world.audit.records == []

    def test_plan_table(self, wiring, env, world):
        """Without --json plan prints a table with service, entity, from, to and action."""
        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["plan", "--certificate", "partner-mtls"]
        )

        assert result.exit_code == 0, result.output
        assert "apim-a" in result.stdout
        assert V1[:12] in result.stdout
        assert V2[:12] in result.stdout
        assert "update" in result.stdout
        assert "what a rotation would do" in result.stdout
        assert "a rotation would apply it" in result.stdout

    def test_unbound_certificate_is_ignored(self, wiring, env, world, chain):
        """A certificate that exists but no APIM entity references plans to `ignored`, exit 0."""
        world.source.add_version(
            VAULT, "unbound", V1, created=NOW - timedelta(days=1),
            secret=to_pkcs12(chain[0], [chain[1]]), leaf=chain[0].cert,
        )  # fmt: skip

        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["plan", "--certificate", "unbound", "--json"]
        )

        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["decision"] == "ignored"

    def test_a_certificate_that_does_not_exist_exits_1(self, wiring, env, world):
        """As the help says: not found is exit 1, one line naming it, no plan printed."""
        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["plan", "--certificate", "nope", "--json"]
        )

        assert result.exit_code == 1
        assert result.stdout == ""
        assert "cannot plan nope:" in result.stderr
        assert "not found" in result.stderr

    def test_unreachable_key_vault_exits_1(self, wiring, env, world):
        """A failing read is reported on stderr, without a traceback, exit 1."""
        world.source.fail["list_certificate_versions"] = TransientDependencyError(
            "Key Vault said 503", service="keyvault", operation="list_versions"
        )

        result = CliRunner(env=env).invoke(
            cli, obj=wiring, args=["plan", "--certificate", "partner-mtls"]
        )

        assert result.exit_code == 1
        assert "503" in result.stderr
        assert "Traceback" not in result.output

    def test_several_vaults_need_vault_option(self, wiring, env, world):
        """With several vaults configured, --vault is required (exit 2)."""
        two = env | {"ROTATION_VAULTS": f"{VAULT},https://kv-other.vault.azure.net"}

        result = CliRunner(env=two).invoke(
            cli, obj=wiring, args=["plan", "--certificate", "partner-mtls"]
        )

        assert result.exit_code == 2
        assert "--vault" in result.stderr


# --- demo -----------------------------------------------------------------------------------------

_DECISIONS = ["applied", "already_current", "superseded", "rejected", "rejected", "applied"]
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}")


def spying_start(seen: dict[str, Any], configure=None):
    """A Devstack.start that records the stack's token and every imported bundle."""
    original = Devstack.start

    @contextmanager
    def spy(*args, **kwargs):
        with original(*args, **kwargs) as stack:
            seen["token"] = stack.token
            importer = stack.import_certificate

            def capture(name, data, **kw):
                seen.setdefault("bundles", []).append(data)
                return importer(name, data, **kw)

            stack.import_certificate = capture  # type: ignore[method-assign]
            if configure is not None:
                configure(stack)
            yield stack

    return spy


@pytest.fixture(name="demo_run", scope="module")
def _demo_run(tmp_path_factory: pytest.TempPathFactory):
    """One `certrotate demo` run, with the stack's token and imported bundles captured."""
    seen: dict[str, Any] = {}
    log = tmp_path_factory.mktemp("demo") / "audit.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Devstack, "start", spying_start(seen))
        result = CliRunner().invoke(cli, ["demo", "--audit-log", str(log)])
    structlog.reset_defaults()
    return result, log, seen


class TestDemo:
    def test_without_nginx_the_canary_scene_is_skipped_and_said_so(self, tmp_path, monkeypatch):
        """nginx missing: the demo says so, plays the four other chapters, and exits 0."""
        monkeypatch.setattr("devstack.nginx.find_nginx", lambda: None)
        result = CliRunner().invoke(cli, ["demo", "--audit-log", str(tmp_path / "a.jsonl")])
        structlog.reset_defaults()

        assert result.exit_code == 0, result.output
        assert "nginx could not start" in result.stdout
        assert "skipping the canary scene" in result.stdout
        assert "All 6 decisions as expected" in result.stdout
        assert "canary." not in result.stdout

    def test_tells_the_four_decisions_in_order_and_exits_0(self, demo_run):
        """The demo shows applied, already_current, superseded, rejected (twice), then the
        inbound chapters' applied, in that order."""
        result, _, _ = demo_run

        positions, at = [], 0
        for decision in _DECISIONS:  # each one after the one before
            at = result.stdout.find(f"decision: {decision}", at + 1)
            positions.append(at)
        assert result.exit_code == 0, result.output
        assert -1 not in positions
        assert "chain.untrusted" in result.stdout
        assert "canary.refused" in result.stdout  # chapter 5: nginx refuses v4
        assert "All 7 decisions as expected" in result.stdout

    def test_audit_log_has_one_record_per_decision_with_section_5_fields(self, demo_run):
        """The JSON Lines log holds one canonical record per step, each with every audit field."""
        _, log, _ = demo_run

        records = [json.loads(line) for line in log.read_text().splitlines()]
        canonical = [r for r in records if r["event"] != "rotation.target"]
        assert [r["decision"] for r in canonical[: len(_DECISIONS)]] == _DECISIONS
        assert all(set(AUDIT_FIELDS) <= r.keys() for r in records)
        assert canonical[3]["findings"] == ["chain.untrusted"]
        # The devstack publishes no CRL: every validation also warns revocation.unavailable.
        assert canonical[4]["findings"] == ["revocation.unavailable", "canary.refused"]
        assert "canary.passed" in canonical[0]["findings"]  # v2 is trusted by the backend
        assert str(log) in demo_run[0].stdout
        # Chapters 6 and 7: the caller's renewal added at every pinning policy, then (the sweep)
        # the old identity removed from each.
        caller = [r for r in canonical if r["certificate"] == "partner-caller"]
        assert [r["decision"] for r in caller] == ["applied", "applied"]
        added, retired = ([t for t in r["targets"] if t["kind"] == "policy"] for r in caller)
        assert len(added) == len(retired) == 4  # global and the orders API, in two services
        assert all(t["added"] and not t["removed"] for t in added)
        assert all(t["removed"] == [added[0]["from"]] and not t["added"] for t in retired)

    def test_no_secret_reaches_screen_or_log(self, demo_run):
        """No private key, devstack token or PFX body appears in the output or the audit log."""
        result, log, seen = demo_run
        texts = [result.output, log.read_text()]

        pfx_heads = [base64.b64encode(b).decode()[:40] for b in seen["bundles"]]
        assert len(pfx_heads) >= 4
        for text in texts:
            assert "PRIVATE KEY" not in text
            assert seen["token"] not in text
            assert not any(head in text for head in pfx_heads)
            assert not _BASE64_RUN.search(text)

    def test_exits_1_when_a_step_goes_wrong(self, tmp_path, monkeypatch):
        """If APIM refuses the rotation, the demo reports the wrong decision and exits 1."""

        def refuse_certificate_writes(stack):
            stack.faults_arm.fail("*/certificates/*", status=400, method="PUT", count=100)

        monkeypatch.setattr(Devstack, "start", spying_start({}, refuse_certificate_writes))

        result = CliRunner().invoke(cli, ["demo", "--audit-log", str(tmp_path / "a.jsonl")])

        assert result.exit_code == 1
        assert "decision: failed (expected applied)" in result.stdout
        assert "Some steps did not go as expected" in result.stdout


class CountingSink:
    """An audit sink that keeps nothing but a count (so memory measures the replay itself)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, record: AuditRecord) -> None:
        self.count += 1


@pytest.mark.slow
class TestReplayMemory:
    def test_ten_thousand_events_stream_in_constant_memory(self, wiring, tmp_path, env, world):
        """Replaying 10,000 events peaks no higher than replaying 1,000 (tracemalloc), with one write."""
        sink = CountingSink()
        wiring.build_audit_sink = lambda _settings: sink
        runner = CliRunner(env=env)
        runner.invoke(
            cli, obj=wiring, args=["replay", str(duplicates_file(tmp_path / "warm.jsonl", 10))]
        )
        small = duplicates_file(tmp_path / "small.jsonl", 1_000)
        large = duplicates_file(tmp_path / "large.jsonl", 10_000)
        peaks = []

        tracemalloc.start()
        try:
            for path in (small, large):
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                result = runner.invoke(cli, obj=wiring, args=["replay", str(path)])
                assert result.exit_code == 0, result.output
                peaks.append(tracemalloc.get_traced_memory()[1] - before)
        finally:
            tracemalloc.stop()

        assert peaks[1] < peaks[0] * 1.5 + 256 * 1024, peaks
        assert [w.op for w in world.gateway.updates] == ["put_certificate"]
        assert sink.count >= 11_010

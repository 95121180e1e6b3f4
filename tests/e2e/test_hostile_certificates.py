"""A hostile candidate (negative serial) is ``rejected`` with a finding, end to end on the devstack:
through the Event Grid trigger, ``certrotate replay`` and the reconcile sweep (``certrotate
reconcile``), and the sweep goes on to the next certificate.

Before issue 9 a negative serial checked against a CRL raised ``ValueError`` in the validator:
the trigger recorded ``failed`` (redelivered until dead-lettered) and the sweep stopped there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.pki import to_pkcs12
from rotation import bootstrap
from rotation.entrypoints.cli import cli
from tests.e2e.world import CERT, NEW_VERSION, World, audit_lines, event_data, topic
from tests.hostile import with_serial

# cryptography warns (it will refuse such certificates in a future release) wherever the devstack
# or an adapter reads the serial; in production a warning is only a warning, so here too.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"
)

HOSTILE = "aaa-hostile"  # reconcile sweeps certificates in name order: this one comes first
GOOD = "zzz-partner"


def hostile_pfx(world: World) -> bytes:
    """A correctly signed leaf under the trusted intermediate whose serial is -0x77."""
    leaf = with_serial(world.pki.leaf(), -0x77, issuer=world.pki.intermediate)
    return to_pkcs12(leaf, [world.pki.intermediate])


def bind_with_backend(world: World, name: str) -> str:
    """v1 of ``name`` bound in svc1 (entity + backend); return v1."""
    v1 = world.add_version(name)
    world.bind(world.svc1, name, v1, name=name)
    world.add_backend(world.svc1, f"api-{name}", name)
    return v1


def env_of(world: World) -> dict[str, str | None]:
    return {
        **world.stack.env(),
        "ROTATION_TRUST_ANCHORS": str(world.anchors),
        "ROTATION_HTTP_RETRIES": "0",
        "ROTATION_LOCK": "off",
        "ROTATION_AUDIT_TABLE": None,
        "AzureWebJobsStorage": None,
    }


@pytest.fixture(name="cli_clock")
def _cli_clock(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's service is built with the world's frozen clock."""
    real_build = bootstrap.build_service
    monkeypatch.setattr(bootstrap, "build_service", lambda settings, **kw: real_build(settings, **{**kw, "clock": world.clock}))  # fmt: skip


def findings_of(record: dict[str, Any]) -> list[str]:
    return [f if isinstance(f, str) else f["code"] for f in record["findings"]]


def test_trigger_rejects_with_a_finding(world: World, capsys: pytest.CaptureFixture[str]):
    """Event Grid trigger: rejected (not failed, so no redelivery), nothing moved."""
    v1 = bind_with_backend(world, CERT)
    bad = world.add_version(CERT, data=hostile_pfx(world))
    world.use()

    event_id = world.deliver(bad)

    (record,) = [a for a in audit_lines(capsys.readouterr().out) if a.get("event_id") == event_id and a["event"] != "rotation.target"]  # fmt: skip
    assert record["decision"] == "rejected"
    assert "format.unreadable" in findings_of(record)
    assert world.pinned(world.svc1, CERT).endswith(v1)


@pytest.mark.usefixtures("cli_clock")
def test_replay_rejects_with_a_finding(world: World, tmp_path: Path):
    """`certrotate replay`: the hostile version is rejected with its finding; nothing moved."""
    v1 = bind_with_backend(world, CERT)
    bad = world.add_version(CERT, data=hostile_pfx(world))
    event = {
        "id": "hostile-1", "topic": topic(world.stack), "subject": CERT, "eventType": NEW_VERSION,
        "eventTime": "2026-03-01T12:00:00Z", "dataVersion": "1", "data": event_data(world.stack, CERT, bad),
    }  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event) + "\n", encoding="utf-8")

    result = CliRunner(env=env_of(world)).invoke(cli, ["replay", "--json", str(path)])

    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    (record,) = [line for line in lines if line.get("decision")]
    assert record["decision"] == "rejected", record
    assert "format.unreadable" in findings_of(record)
    assert world.pinned(world.svc1, CERT).endswith(v1)


@pytest.mark.usefixtures("cli_clock")
def test_reconcile_rejects_it_and_goes_on(world: World):
    """`certrotate reconcile`: the hostile certificate (swept first) is rejected with a finding,
    and the next certificate's missed version is still applied."""
    hostile_v1 = bind_with_backend(world, HOSTILE)
    world.add_version(HOSTILE, data=hostile_pfx(world))
    bind_with_backend(world, GOOD)
    good_v2 = world.add_version(GOOD)

    result = CliRunner(env=env_of(world)).invoke(cli, ["reconcile", "--json"])

    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    by_name = {r["certificate"]: r for r in records if r.get("certificate") in {HOSTILE, GOOD} and "targets" in r}  # fmt: skip
    assert by_name[HOSTILE]["decision"] == "rejected", by_name
    assert "format.unreadable" in findings_of(by_name[HOSTILE])
    assert by_name[GOOD]["decision"] == "applied", by_name
    assert [r["certificate"] for r in records if r["certificate"] in by_name] == [HOSTILE, GOOD]
    assert world.pinned(world.svc1, HOSTILE).endswith(hostile_v1)
    assert world.pinned(world.svc1, GOOD).endswith(good_v2)

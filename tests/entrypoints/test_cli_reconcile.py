"""`certrotate reconcile` through click's CliRunner, against the devstack with the real adapters.

The CLI is wired from the devstack's environment (``Devstack.env()`` plus trust anchors), so the
real ``KeyVaultCertificateSource``, ``ArmApimGateway``, ``PolicyValidator`` and stderr audit sink
run; only the clock is injected (through ``bootstrap.build_service``'s own keyword, handed to the
CLI as click's context object like the other CLI tests do), so expiry is a matter of input, never of waiting.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from devstack.pki import make_key, mint_chain
from devstack.stack import Devstack
from rotation import bootstrap
from rotation.entrypoints.cli import cli
from rotation.entrypoints.cli.wiring import Wiring
from tests.e2e.world import CERT, NOW, E2ePki, World, mint_stranger

RECORD_KEYS = {"certificate", "version", "decision", "findings", "targets"}
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}")


@pytest.fixture(scope="module", name="pki")
def _pki() -> E2ePki:
    inter, root = mint_chain(depth=3, kind="ec", size=256)[1:]
    return E2ePki(root=root, intermediate=inter, stranger=mint_stranger(), key=make_key("ec", 256))


@pytest.fixture(name="world")
def _world(
    devstack: Devstack, pki: E2ePki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> World:
    """The devstack world."""
    return World(devstack, pki, tmp_path, monkeypatch)


@pytest.fixture(name="run")
def _run(world: World) -> Callable[..., Result]:
    """``run(env, *args)``: `certrotate reconcile ARGS` with the CLI's service built with the
    world's frozen clock (handed to the CLI as click's context object)."""

    def build(settings, **kwargs):
        return bootstrap.build_service(settings, clock=world.clock, **kwargs)

    wiring = Wiring(build_service=build)

    def run(env: dict[str, str | None], *args: str) -> Result:
        return CliRunner(env=env).invoke(cli, ["reconcile", *args], obj=wiring)

    return run


@pytest.fixture(name="env")
def _env(world: World) -> dict[str, str | None]:
    """The devstack's settings (no SDK retries, no lock or audit table from the host's env)."""
    return {
        **world.stack.env(),
        "ROTATION_TRUST_ANCHORS": str(world.anchors),
        "ROTATION_HTTP_RETRIES": "0",
        "ROTATION_LOCK": "off",
        "ROTATION_AUDIT_TABLE": None,
        "AzureWebJobsStorage": None,
        # The devstack CA publishes no CRL: in the default soft mode every record would carry
        # a revocation.unavailable warning; these tests are about the sweep, not revocation.
        "ROTATION_REVOCATION": "off",
    }


@pytest.fixture(name="missed")
def _missed(world: World) -> tuple[World, str, str]:
    """v1 bound in both services (entity + a backend each); v2 imported with no event."""
    v1 = world.add_version()
    for svc, backend in ((world.svc1, "api-a"), (world.svc2, "api-b")):
        world.bind(svc, CERT, v1)
        world.add_backend(svc, backend, CERT)
    v2 = world.add_version()
    world.stack.request_log.clear()
    return world, v1, v2


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the rich table on stdout, as stripped cells."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.count("│") == 7
    ]


def assert_no_secrets(result: Result, world: World) -> None:
    """No private key, token or bundle body on stdout or stderr (audit lines included)."""
    bundles = [world.pki.pfx(), world.pki.key_pem()]
    heads = [base64.b64encode(b).decode()[:40] for b in bundles]
    for text in (result.stdout, result.stderr):
        assert "PRIVATE KEY" not in text
        assert world.stack.token not in text
        assert not any(head in text for head in heads)
        assert not _BASE64_RUN.search(text)


class TestMissedVersion:
    def test_missed_version_is_applied_and_apim_presents_it(self, missed, env, run):
        """A version imported without an event is applied by the sweep; APIM presents it."""
        world, _, v2 = missed

        result = run(env)

        assert result.exit_code == 0, result.output
        (row,) = table_rows(result.stdout)
        assert row == [CERT, v2[:8], "rotation", "applied", "-", "2"]
        assert "reconcile summary: applied 1" in result.stdout
        for svc, backend in ((world.svc1, "api-a"), (world.svc2, "api-b")):
            assert world.pinned(svc, CERT).endswith(f"/{v2}")
            assert world.presented(svc, backend) == [world.thumbprints[v2]]
        assert "rotation.applied" in result.stderr  # the audit line, not on stdout
        assert_no_secrets(result, world)

    def test_second_run_is_already_current_without_an_apim_write(self, missed, env, run):
        """Run again, the sweep finds every binding current and writes nothing."""
        world, _, v2 = missed
        assert run(env).exit_code == 0
        world.stack.request_log.clear()

        result = run(env, "--json")

        assert result.exit_code == 0, result.output
        (line,) = json_lines(result.stdout)
        assert (line["decision"], line["version"]) == ("already_current", v2)
        assert world.writes() == []
        assert "reconcile summary: already_current 1" in result.stderr

    def test_dry_run_reports_the_decision_and_writes_nothing(self, missed, env, run):
        """--dry-run decides (applied, as a plan) and lists the targets; APIM is unchanged."""
        world, v1, v2 = missed
        before = world.snapshot()

        result = run(env, "--dry-run", "--json")

        assert result.exit_code == 0, result.output
        (line,) = json_lines(result.stdout)
        assert (line["event"], line["decision"], line["dry_run"]) == (
            "rotation.planned",
            "applied",
            True,
        )
        assert {t["result"] for t in line["targets"]} == {"skipped_dry_run"}
        assert all(t["to"].endswith(f"/{v2}") for t in line["targets"])
        assert world.snapshot() == before
        assert world.writes() == []
        assert world.pinned(world.svc1, CERT).endswith(f"/{v1}")

    def test_dry_run_table_counts_what_would_change(self, missed, env, run):
        """Without --json, a dry run's table says how many targets would change."""
        world, _, v2 = missed

        result = run(env, "--dry-run")

        assert result.exit_code == 0, result.output
        assert "would change" in result.stdout
        assert table_rows(result.stdout) == [[CERT, v2[:8], "plan", "applied", "-", "2"]]
        assert world.writes() == []

    def test_json_lines_parse_and_carry_the_record_keys(self, missed, env, run):
        """--json: one record per line on stdout, with the audit record's own keys."""
        world, v1, v2 = missed

        result = run(env, "--json")

        assert result.exit_code == 0, result.output
        (line,) = json_lines(result.stdout)
        assert line.keys() >= RECORD_KEYS
        assert (line["certificate"], line["version"], line["previous_version"]) == (CERT, v2, v1)
        assert line["trigger"] == "cli"
        assert line["findings"] == []
        assert sorted((t["service"], t["result"]) for t in line["targets"]) == [
            (world.svc1, "updated"),
            (world.svc2, "updated"),
        ]
        assert_no_secrets(result, world)


class TestNearExpiry:
    def test_near_expiry_of_the_version_in_use_is_alerted(self, world, env, run):
        """The in-use version gets a certificate.near_expiry record once the (injected) clock is
        within ROTATION_NEAR_EXPIRY_DAYS of its expiry, and not before."""
        v1 = world.add_version(not_before=NOW - timedelta(days=30), days=365)
        world.bind(world.svc1, CERT, v1)
        quiet = run(env, "--json")
        world.clock.advance(days=320)  # v1 expires NOW + 335 days: 15 days left

        result = run(env, "--json")

        assert [x["event"] for x in json_lines(quiet.stdout)] == ["rotation.already_current"]
        assert result.exit_code == 0, result.output
        lines = json_lines(result.stdout)
        assert [x["event"] for x in lines] == [
            "rotation.already_current",
            "certificate.near_expiry",
        ]
        assert lines[1].keys() >= RECORD_KEYS
        assert (lines[1]["certificate"], lines[1]["version"]) == (CERT, v1)
        assert f"certificate.near_expiry {CERT}" in result.stderr
        assert "1 expiry alert(s)" in result.stderr
        assert world.writes() == []

    def test_alert_row_in_the_table(self, world, env, run):
        """The table shows the alert as its own row."""
        v1 = world.add_version(not_before=NOW - timedelta(days=340), days=350)
        world.bind(world.svc1, CERT, v1)

        result = run(env)

        assert result.exit_code == 0, result.output
        assert [row[2:4] for row in table_rows(result.stdout)] == [
            ["rotation", "already_current"],
            ["near expiry", "already_current"],
        ]
        assert "already_current 1; 1 expiry alert(s)" in result.stdout


class TestFailures:
    def test_apim_failure_exits_1_and_the_records_still_print(self, missed, env, run):
        """A 503 on one certificate's write: the sweep goes on, every record prints, exit 1."""
        world, v1, _ = missed
        other_v1 = world.add_version("other")
        world.bind(world.svc1, "other", other_v1, name="other")
        other_v2 = world.add_version("other")
        world.stack.faults_arm.fail(f"*/certificates/{CERT}", status=503, method="PUT", count=10)

        result = run(env, "--json")

        assert result.exit_code == 1
        lines = {x["certificate"]: x for x in json_lines(result.stdout)}
        assert lines[CERT]["decision"] == "failed"
        assert "503" in lines[CERT]["error"]
        assert (lines["other"]["decision"], lines["other"]["version"]) == ("applied", other_v2)
        assert "reconcile failed: BackendUpdateError" in result.stderr
        assert f"failed {CERT}:" in result.stderr
        assert "Traceback" not in result.output
        assert world.pinned(world.svc1, CERT).endswith(f"/{v1}")
        assert world.pinned(world.svc1, "other").endswith(f"/{other_v2}")
        assert_no_secrets(result, world)

    def test_failure_table_shows_the_failed_row(self, missed, env, run):
        """Without --json the failed certificate is a table row, and the summary counts it."""
        world, _, _ = missed
        world.stack.faults_arm.fail(f"*/certificates/{CERT}", status=503, method="PUT", count=10)

        result = run(env)

        assert result.exit_code == 1
        assert [row[2:4] for row in table_rows(result.stdout)] == [["rotation", "failed"]]
        assert "reconcile summary: failed 1" in result.stdout

    def test_non_retryable_failure_also_exits_1(self, missed, env, run):
        """A 400 (not retried: the service returns normally) still fails the command."""
        world, v1, _ = missed
        world.stack.faults_arm.fail(f"*/certificates/{CERT}", status=400, method="PUT", count=10)

        result = run(env, "--json")

        assert result.exit_code == 1
        (line,) = json_lines(result.stdout)
        assert line["decision"] == "failed"
        assert "reconcile failed" not in result.stderr
        assert world.pinned(world.svc1, CERT).endswith(f"/{v1}")

    def test_unlistable_service_is_a_reconcile_failed_record(self, missed, env, run):
        """A service that cannot be listed gets its reconcile.failed record; the rest converge."""
        world, _, v2 = missed
        world.stack.faults_arm.fail(f"*/service/{world.svc2}/certificates", status=503, count=10)

        result = run(env, "--json")

        assert result.exit_code == 1
        lines = json_lines(result.stdout)
        assert [(x["event"], x["certificate"]) for x in lines] == [
            ("reconcile.failed", None),
            ("rotation.applied", CERT),
        ]
        assert world.svc2 in lines[0]["message"]
        assert f"failed: could not list APIM service {world.stack.service_id(world.svc2)}" in (
            result.stderr
        )
        assert world.pinned(world.svc1, CERT).endswith(f"/{v2}")


class TestUsage:
    def test_broken_setting_exits_2_naming_it(self, world, env, run):
        """An invalid setting is a usage error naming the setting; nothing is called."""
        result = run(env | {"ROTATION_NEAR_EXPIRY_DAYS": "0"})

        assert result.exit_code == 2
        assert "ROTATION_NEAR_EXPIRY_DAYS" in result.stderr
        assert "Traceback" not in result.output
        assert world.stack.request_log.arm.entries() == []
        assert world.stack.request_log.kv.entries() == []
        assert world.stack.token not in result.output

    def test_help_documents_the_exit_statuses(self):
        """--help documents exit statuses 0, 1 and 2."""
        result = CliRunner().invoke(cli, ["reconcile", "--help"])

        assert result.exit_code == 0
        assert "Exit status" in result.output
        assert "--dry-run" in result.output
        assert "--json" in result.output

"""Tests for `certrotate validate`: the exit-code and JSON contract scripts depend on."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.pki import EPOCH, Issued, make_crl, mint_chain, to_pem_bundle, to_pkcs12
from rotation.entrypoints.cli.validate import validate
from tests.hostile import with_serial

AT = "2026-03-01T00:00:00Z"


@pytest.fixture(scope="module", name="chain")
def _chain() -> list[Issued]:
    return mint_chain(depth=3)


@pytest.fixture(name="files")
def _files(tmp_path: Path, chain: list[Issued]) -> dict[str, Path]:
    leaf, inter, root = chain
    contents = {
        "bundle.pem": to_pem_bundle(leaf, [inter]),
        "nokey.pem": to_pem_bundle(leaf, [inter], with_key=False),
        "leaf.pem": leaf.pem,
        "inter.pem": inter.pem,
        "root.pem": root.pem,
        "key.pem": leaf.key_pem,
        "bundle.p12": to_pkcs12(leaf, [inter], password=b"hunter2"),
        "junk.pfx": b"\x30\x82\x01\x00 this is not a pkcs12",
        "negative.pem": to_pem_bundle(with_serial(leaf, -0x1234, issuer=inter), [inter]),
        "inter.crl": make_crl(inter, revoked_serials=(7,), last_update=EPOCH + dt.timedelta(days=58)).public_bytes(serialization.Encoding.PEM),
        "root.crl": make_crl(root, last_update=EPOCH + dt.timedelta(days=58)).public_bytes(serialization.Encoding.PEM),
        "revoked.crl": make_crl(
            inter, revoked_serials=(leaf.cert.serial_number,), last_update=EPOCH + dt.timedelta(days=58)
        ).public_bytes(serialization.Encoding.PEM),
    }  # fmt: skip
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


# No ROTATION_* setting of the host leaks into these tests.
CLEAN_ENV: dict[str, str | None] = dict.fromkeys(("ROTATION_TRUST_ANCHORS", "ROTATION_MIN_VALID_DAYS", "ROTATION_REVOCATION", "ROTATION_REQUIRE_EKU", "ROTATION_CLOCK_SKEW_SECONDS", "ROTATION_VAULTS", "ROTATION_APIM_SERVICES"))  # fmt: skip


def invoke(*args: object, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:  # fmt: skip
    """Run `certrotate validate` with ``args`` (paths stringified)."""
    runner = CliRunner(env={**CLEAN_ENV, **(env or {})})
    return runner.invoke(validate, [str(a) for a in args], input=stdin)


def as_json(result: Result) -> dict[str, Any]:
    """The single JSON object printed by --json."""
    return json.loads(result.output)


class TestExitCodes:
    """0 accepted, 1 rejected, 2 usage."""

    def test_accepted_human_output(self, files: dict[str, Path]):
        """A good bundle exits 0 and the summary names the leaf, the chain and the verdict."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", AT)

        assert result.exit_code == 0, result.output
        assert "client.certrotate.test" in result.output
        assert "Test Root CA" in result.output
        assert "ACCEPTED" in result.output

    def test_rejected_expired(self, files: dict[str, Path]):
        """An expired leaf exits 1 with validity.expired."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--revocation", "off", "--at", "2027-06-01T00:00:00+00:00", "--json")  # fmt: skip

        assert result.exit_code == 1
        assert [f["code"] for f in as_json(result)["findings"]] == ["validity.expired"]

    def test_unreadable_bundle_is_rejection_not_traceback(self, files: dict[str, Path]):
        """An unparsable bundle exits 1 with format.unreadable, never a traceback."""
        result = invoke(files["junk.pfx"], "--trust", files["root.pem"], "--json")

        assert result.exit_code == 1
        assert result.exception is None or isinstance(result.exception, SystemExit)
        report = as_json(result)
        assert report["findings"][0]["code"] == "format.unreadable"
        assert report["leaf"] is None

    @pytest.mark.parametrize(
        "args",
        [
            ["missing.pem"],
            ["{bundle}", "--revocation", "sometimes"],
            ["{bundle}", "--at", "yesterday"],
            ["{bundle}", "--min-days", "-1"],
            ["{bundle}", "--trust", "{key}"],
            ["{bundle}", "--crl", "{root}"],
            ["{bundle}", "--bogus"],
            ["{bundle}", "--trust", "{root}", "--at", "0001-01-01T00:00:00+05:00"],
            ["{bundle}", "--trust", "{root}", "--password", "x", "--password-env", "X"],
            ["{bundle}", "--trust", "{root}", "--password-env", "CERTROTATE_TEST_UNSET"],
        ],
        ids=[
            "missing-file",
            "bad-mode",
            "bad-at",
            "negative-days",
            "bad-trust",
            "bad-crl",
            "bad-flag",
            "at-overflows",
            "two-password-sources",
            "password-env-unset",
        ],
    )
    def test_usage_errors_exit_2(self, files: dict[str, Path], args: list[str]):
        """Missing files, bad flags and unreadable --trust/--crl files exit 2."""
        fill = {"bundle": files["bundle.pem"], "key": files["key.pem"], "root": files["root.pem"]}

        result = invoke(*[a.format(**fill) for a in args])

        assert result.exit_code == 2
        assert result.exception is None or isinstance(result.exception, SystemExit)


class TestJson:
    """--json prints exactly one object with accepted, findings, leaf, chain."""

    def test_shape(self, files: dict[str, Path], chain: list[Issued]):
        """The object has exactly the four keys; summaries carry ISO dates and upper-case SHA-1."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", AT, "--json")

        report = as_json(result)
        assert set(report) == {"accepted", "findings", "leaf", "chain"}
        assert report["accepted"] is True
        leaf = report["leaf"]
        assert isinstance(leaf, dict)
        assert leaf["thumbprint_sha1"] == chain[0].cert.fingerprint(hashes.SHA1()).hex().upper()  # fmt: skip
        assert leaf["not_before"] == "2026-01-01T00:00:00Z"
        assert len(report["chain"]) == 3

    def test_finding_fields(self, files: dict[str, Path]):
        """Each finding has code, severity, message and certificate."""
        result = invoke(files["nokey.pem"], "--trust", files["root.pem"], "--no-require-key", "--at", AT, "--json")  # fmt: skip

        finding = as_json(result)["findings"][0]
        assert finding == {
            "code": "key.missing",
            "severity": "warning",
            "message": finding["message"],
            "certificate": "O=certrotate test,CN=client.certrotate.test",
        }


class TestOptions:
    """Each option does what the contract says."""

    def test_no_trust_anywhere_is_a_usage_error(self, files: dict[str, Path]):
        """Without --trust and without ROTATION_TRUST_ANCHORS nothing could be trusted: exit 2."""
        result = invoke(files["bundle.pem"], "--at", AT)

        assert result.exit_code == 2
        assert "ROTATION_TRUST_ANCHORS" in result.output

    def test_trust_anchors_come_from_the_setting(self, files: dict[str, Path]):
        """Without --trust, ROTATION_TRUST_ANCHORS is used, as the service does."""
        result = invoke(files["bundle.pem"], "--at", AT, env={"ROTATION_TRUST_ANCHORS": str(files["root.pem"])})  # fmt: skip

        assert result.exit_code == 0, result.output
        assert "Test Root CA" in result.output

    def test_policy_settings_are_the_services(self, files: dict[str, Path]):
        """ROTATION_MIN_VALID_DAYS and ROTATION_REVOCATION apply unless a flag overrides them."""
        env: dict[str, str | None] = {
            "ROTATION_MIN_VALID_DAYS": "400",
            "ROTATION_REVOCATION": "hard",
        }

        by_settings = as_json(invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", AT, "--json", env=env))  # fmt: skip
        by_flags = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", AT, "--min-days", "1", "--revocation", "off", env=env)  # fmt: skip

        codes = {(f["code"], f["severity"]) for f in by_settings["findings"]}
        assert codes == {("validity.too_short", "error"), ("revocation.unavailable", "error")}
        assert by_flags.exit_code == 0, by_flags.output

    def test_invalid_setting_is_a_usage_error(self, files: dict[str, Path]):
        """A malformed validation setting exits 2 and names the setting."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], env={"ROTATION_MIN_VALID_DAYS": "soon"})  # fmt: skip

        assert result.exit_code == 2
        assert "ROTATION_MIN_VALID_DAYS" in result.output

    def test_key_required_by_default(self, files: dict[str, Path]):
        """No key: exit 1 (key.missing error) as the service would; --no-require-key: a warning."""
        strict = invoke(files["nokey.pem"], "--trust", files["root.pem"], "--at", AT)
        lenient = invoke(files["nokey.pem"], "--trust", files["root.pem"], "--at", AT, "--no-require-key")  # fmt: skip

        assert strict.exit_code == 1
        assert "key.missing" in strict.output
        assert lenient.exit_code == 0, lenient.output
        assert "key.missing" in lenient.output

    def test_chain_and_key_from_separate_files(self, files: dict[str, Path]):
        """A leaf-only file plus --chain and --key validates like the full bundle."""
        result = invoke(files["leaf.pem"], "--chain", files["inter.pem"], "--key", files["key.pem"], "--trust", files["root.pem"], "--at", AT, "--revocation", "off", "--json")  # fmt: skip

        assert result.exit_code == 0, result.output
        assert as_json(result)["findings"] == []

    def test_pkcs12_password(self, files: dict[str, Path]):
        """The right --password opens the PKCS#12; a wrong one is format.unreadable (exit 1)."""
        good = invoke(files["bundle.p12"], "--password", "hunter2", "--trust", files["root.pem"], "--at", AT)  # fmt: skip
        bad = invoke(files["bundle.p12"], "--password", "nope", "--trust", files["root.pem"], "--at", AT)  # fmt: skip

        assert good.exit_code == 0, good.output
        assert bad.exit_code == 1
        assert "format.unreadable" in bad.output

    def test_password_from_env_or_prompt(self, files: dict[str, Path]):
        """--password-env VAR and --password-prompt open the PKCS#12 too; neither is echoed."""
        by_env = invoke(files["bundle.p12"], "--password-env", "P12_PASSWORD", "--trust", files["root.pem"], "--at", AT, env={"P12_PASSWORD": "hunter2"})  # fmt: skip
        by_prompt = invoke(files["bundle.p12"], "--password-prompt", "--trust", files["root.pem"], "--at", AT, stdin="hunter2\n")  # fmt: skip

        assert by_env.exit_code == 0, by_env.output
        assert by_prompt.exit_code == 0, by_prompt.output
        assert "hunter2" not in by_env.output + by_prompt.output

    def test_negative_serial_is_a_finding_not_a_traceback(self, files: dict[str, Path]):
        """A negative serial checked against CRLs ends as findings (exit 1), never a crash."""
        result = invoke(files["negative.pem"], "--trust", files["root.pem"], "--crl", files["inter.crl"], "--crl", files["root.crl"], "--revocation", "hard", "--at", AT, "--json")  # fmt: skip

        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert as_json(result)["findings"], result.output

    @pytest.mark.parametrize("mode", ["soft", "hard"])
    def test_crl_revokes(self, files: dict[str, Path], mode: str):
        """A --crl listing the leaf rejects it with revocation.revoked in soft and hard mode."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--crl", files["revoked.crl"], "--crl", files["root.crl"], "--revocation", mode, "--at", AT, "--json")  # fmt: skip

        assert result.exit_code == 1
        assert [f["code"] for f in as_json(result)["findings"]] == ["revocation.revoked"]

    def test_min_days(self, files: dict[str, Path]):
        """--min-days raises the minimum remaining lifetime (validity.too_short)."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", AT, "--min-days", "400")  # fmt: skip

        assert result.exit_code == 1
        assert "validity.too_short" in result.output

    def test_naive_at_is_utc(self, files: dict[str, Path]):
        """--at without an offset is read as UTC."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", "2026-03-01T00:00:00", "--json")  # fmt: skip

        assert result.exit_code == 0


class TestSecrets:
    """Private key material and the password never reach the output."""

    @pytest.mark.parametrize("json_flag", [[], ["--json"]])
    def test_no_key_material_or_password_in_output(self, files: dict[str, Path], chain: list[Issued], json_flag: list[str]):  # fmt: skip
        """Neither the key's PEM body, its numbers, nor the password are printed."""
        numbers = chain[0].key.private_numbers()  # type: ignore[union-attr]
        assert isinstance(numbers, rsa.RSAPrivateNumbers)
        key_lines = chain[0].key_pem.decode().splitlines()[1:-1]

        outputs = [
            invoke(
                files["bundle.pem"], "--trust", files["root.pem"], "--at", AT, *json_flag
            ).output,
            invoke(files["bundle.p12"], "--password", "hunter2", "--at", AT, *json_flag).output,
            invoke(files["bundle.p12"], "--password", "hunter3", *json_flag).output,
        ]

        for output in outputs:
            assert "PRIVATE KEY" not in output
            assert not any(line in output for line in key_lines)
            assert str(numbers.d) not in output
            assert "hunter" not in output


class TestRegistration:
    """The command is part of the `certrotate` group."""

    def test_registered_in_cli(self):
        """`certrotate validate --help` works through the group."""
        from rotation.entrypoints.cli import cli  # noqa: PLC0415 - the group imports every command module

        result = CliRunner().invoke(cli, ["validate", "--help"])

        assert result.exit_code == 0
        assert "--revocation" in result.output

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
        "revoked.crl": make_crl(
            inter, revoked_serials=(leaf.cert.serial_number,), last_update=EPOCH + dt.timedelta(days=58)
        ).public_bytes(serialization.Encoding.PEM),
    }  # fmt: skip
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


def invoke(*args: object) -> Result:
    """Run `certrotate validate` with ``args`` (paths stringified)."""
    return CliRunner().invoke(validate, [str(a) for a in args])


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
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--at", "2027-06-01T00:00:00+00:00", "--json")  # fmt: skip

        assert result.exit_code == 1
        assert [f["code"] for f in as_json(result)["findings"]] == ["validity.expired"]

    def test_unreadable_bundle_is_rejection_not_traceback(self, files: dict[str, Path]):
        """An unparsable bundle exits 1 with format.unreadable, never a traceback."""
        result = invoke(files["junk.pfx"], "--json")

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
        ],
        ids=[
            "missing-file",
            "bad-mode",
            "bad-at",
            "negative-days",
            "bad-trust",
            "bad-crl",
            "bad-flag",
        ],
    )
    def test_usage_errors_exit_2(self, files: dict[str, Path], args: list[str]):
        """Missing files, bad flags and unreadable --trust/--crl files exit 2."""
        fill = {"bundle": files["bundle.pem"], "key": files["key.pem"], "root": files["root.pem"]}

        result = invoke(*[a.format(**fill) for a in args])

        assert result.exit_code == 2


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
        result = invoke(files["nokey.pem"], "--trust", files["root.pem"], "--at", AT, "--json")

        finding = as_json(result)["findings"][0]
        assert finding == {
            "code": "key.missing",
            "severity": "warning",
            "message": finding["message"],
            "certificate": "O=certrotate test,CN=client.certrotate.test",
        }


class TestOptions:
    """Each option does what the contract says."""

    def test_no_trust_means_untrusted_and_says_so(self, files: dict[str, Path]):
        """Without --trust the chain is untrusted and the output says why."""
        result = invoke(files["bundle.pem"], "--at", AT)

        assert result.exit_code == 1
        assert "chain.untrusted" in result.output
        assert "No --trust given" in result.output

    def test_key_missing_is_warning_unless_required(self, files: dict[str, Path]):
        """No key: exit 0 with a warning; with --require-key, exit 1."""
        lenient = invoke(files["nokey.pem"], "--trust", files["root.pem"], "--at", AT)
        strict = invoke(files["nokey.pem"], "--trust", files["root.pem"], "--at", AT, "--require-key")  # fmt: skip

        assert lenient.exit_code == 0
        assert "key.missing" in lenient.output
        assert strict.exit_code == 1

    def test_chain_and_key_from_separate_files(self, files: dict[str, Path]):
        """A leaf-only file plus --chain and --key validates like the full bundle."""
        result = invoke(files["leaf.pem"], "--chain", files["inter.pem"], "--key", files["key.pem"], "--trust", files["root.pem"], "--at", AT, "--require-key", "--json")  # fmt: skip

        assert result.exit_code == 0, result.output
        assert as_json(result)["findings"] == []

    def test_pkcs12_password(self, files: dict[str, Path]):
        """The right --password opens the PKCS#12; a wrong one is format.unreadable (exit 1)."""
        good = invoke(files["bundle.p12"], "--password", "hunter2", "--trust", files["root.pem"], "--at", AT)  # fmt: skip
        bad = invoke(files["bundle.p12"], "--password", "nope", "--trust", files["root.pem"], "--at", AT)  # fmt: skip

        assert good.exit_code == 0, good.output
        assert bad.exit_code == 1
        assert "format.unreadable" in bad.output

    def test_crl_revokes(self, files: dict[str, Path]):
        """A --crl listing the leaf rejects it with revocation.revoked, even with revocation off."""
        result = invoke(files["bundle.pem"], "--trust", files["root.pem"], "--crl", files["revoked.crl"], "--revocation", "off", "--at", AT, "--json")  # fmt: skip

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

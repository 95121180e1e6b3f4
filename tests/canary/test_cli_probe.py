"""`certrotate probe` against a real nginx: it tells the certificate the backend trusts from one
that chains to our anchor but not to the backend's CA, and never prints key material.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization

from devstack.nginx import Nginx
from devstack.pki import to_pem_bundle, to_pkcs12
from rotation.entrypoints.cli import cli
from tests.canary.servers import CanaryPki

PASSWORD = "correct horse battery staple"


@pytest.fixture
def files(tmp_path: Path, pki: CanaryPki) -> dict[str, Path]:
    contents = {
        "trusted.pem": to_pem_bundle(pki.trusted, pki.chain_of(pki.trusted)),
        "trusted-nokey.pem": to_pem_bundle(pki.trusted, pki.chain_of(pki.trusted), with_key=False),
        "trusted-key.pem": pki.trusted.key_pem,
        "foreign-key.pem": pki.foreign.key_pem,
        "foreign.p12": to_pkcs12(
            pki.foreign, pki.chain_of(pki.foreign), password=PASSWORD.encode()
        ),
        "server-ca.pem": pki.server.ca_pem.read_bytes(),
        "junk.pem": b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["probe", *args], env=env, catch_exceptions=False)


def as_json(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


class TestTellsThemApart:
    def test_the_trusted_certificate_is_accepted(self, nginx: Nginx, files, pki):
        result = run(nginx.url, "--bundle", str(files["trusted.pem"]), "--server-ca", str(files["server-ca.pem"]), "--json")  # fmt: skip

        assert result.exit_code == 0, result.output
        report = as_json(result)
        assert report["accepted"] is True
        assert (report["outcome"], report["http_status"], report["tls_version"]) == ("accepted", 200, "TLSv1.3")  # fmt: skip
        assert report["cipher"]
        assert report["server_certificate"]["subject"] == "CN=localhost"
        assert report["server_certificate"]["issuer"] == "CN=certrotate devstack CA"
        assert report["server_certificate"]["not_after"].endswith("Z")
        assert report["requested_ca_names"] == [pki.backend_root.cert.subject.rfc4514_string()]
        assert report["bundle_issuer_requested"] is True
        assert report["client_certificate"]["subject"] == pki.trusted.cert.subject.rfc4514_string()

    def test_the_foreign_certificate_is_refused(self, nginx: Nginx, files):
        result = run(
            nginx.url, "--bundle", str(files["foreign.p12"]), "--password-env", "P12_PASSWORD",
            "--server-ca", str(files["server-ca.pem"]), "--json",
            env={"P12_PASSWORD": PASSWORD},
        )  # fmt: skip

        assert result.exit_code == 1, result.output
        report = as_json(result)
        assert (report["accepted"], report["outcome"], report["reason"]) == (False, "refused", "http:400")  # fmt: skip
        assert report["bundle_issuer_requested"] is False

    def test_text_report(self, nginx: Nginx, files, pki):
        trusted = run(nginx.url, "--bundle", str(files["trusted-nokey.pem"]), "--key", str(files["trusted-key.pem"]), "--server-ca", str(files["server-ca.pem"]))  # fmt: skip
        foreign = run(
            nginx.url, "--bundle", str(files["foreign.p12"]), "--password-env", "P12_PASSWORD",
            "--server-ca", str(files["server-ca.pem"]), env={"P12_PASSWORD": PASSWORD},
        )  # fmt: skip

        assert (trusted.exit_code, foreign.exit_code) == (0, 1)
        assert "TLSv1.3" in trusted.stdout
        assert pki.backend_root.cert.subject.rfc4514_string() in trusted.stdout
        assert "bundle issuer among them: yes" in trusted.stdout
        assert "HTTP        200" in trusted.stdout
        assert "Result: ACCEPTED" in trusted.stdout
        assert "bundle issuer among them: no" in foreign.stdout
        assert "HTTP        400" in foreign.stdout
        assert "Result: REFUSED" in foreign.stdout

    def test_a_backend_that_is_down_is_unreachable(self, files):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = f"https://localhost:{sock.getsockname()[1]}/"
            result = run(url, "--bundle", str(files["trusted.pem"]), "--json")

        assert result.exit_code == 1
        assert (as_json(result)["outcome"], as_json(result)["reason"]) == (
            "unreachable",
            "connect",
        )

    def test_the_server_certificate_is_checked_unless_told_not_to(self, nginx: Nginx, files):
        checked = run(nginx.url, "--bundle", str(files["trusted.pem"]), "--json")
        unchecked = run(nginx.url, "--bundle", str(files["trusted.pem"]), "--no-validate-chain", "--json")  # fmt: skip

        assert (checked.exit_code, as_json(checked)["reason"]) == (1, "server_certificate")
        assert (unchecked.exit_code, as_json(unchecked)["http_status"]) == (0, 200)


class TestUsage:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["http://localhost/", "--bundle", "{trusted.pem}"], "must be an https URL"),
            (["https://localhost/", "--bundle", "{trusted-nokey.pem}"], "holds no private key"),
            (["https://localhost/", "--bundle", "{foreign.p12}", "--password-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
            (["https://localhost/", "--bundle", "{foreign.p12}"], "foreign.p12"),
            (["https://localhost/", "--bundle", "{junk.pem}"], "junk.pem"),
            (["https://localhost/", "--bundle", "{trusted.pem}", "--server-ca", "{junk.pem}"], "holds no PEM certificate"),
            (["https://localhost/", "--bundle", "{trusted.pem}", "--timeout", "0"], "--timeout"),
            (["https://localhost/", "--bundle", "{trusted-nokey.pem}", "--key", "{foreign-key.pem}"], "does not match the leaf"),
            (["https://localhost/"], "--bundle"),
        ],
    )  # fmt: skip
    def test_usage_errors_exit_2_naming_the_problem(self, files, args, message):
        argv = [str(files[a[1:-1]]) if a.startswith("{") else a for a in args]

        result = run(*argv, env={"NOT_SET_ANYWHERE": None})  # type: ignore[dict-item]

        assert result.exit_code == 2, result.output
        assert message in result.output


class TestNoSecrets:
    def test_no_key_material_password_or_bundle_body_reaches_output_or_logs(
        self, nginx: Nginx, files, pki, caplog
    ):
        caplog.set_level(logging.DEBUG)
        outputs = []
        for extra in ([], ["--json"]):
            for bundle, env in (("trusted.pem", None), ("foreign.p12", {"P12_PASSWORD": PASSWORD})):  # fmt: skip
                args = [nginx.url, "--bundle", str(files[bundle]), "--server-ca", str(files["server-ca.pem"]), *extra]  # fmt: skip
                if env:
                    args += ["--password-env", "P12_PASSWORD"]
                result = run(*args, env=env)
                assert result.exit_code in (0, 1)
                outputs.append(result.output)
        wrong = run(nginx.url, "--bundle", str(files["foreign.p12"]), "--password-env", "P12_PASSWORD", env={"P12_PASSWORD": "wrong " + PASSWORD})  # fmt: skip
        assert wrong.exit_code == 2
        outputs.append(wrong.output)
        text = "\n".join(outputs) + "\n".join(r.getMessage() for r in caplog.records)

        for issued in (pki.trusted, pki.foreign):
            der = issued.key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )  # fmt: skip
            for line in issued.key_pem.decode().splitlines()[1:-1]:
                assert line not in text
            assert der.hex() not in text.lower()
            assert base64.b64encode(der).decode()[:40] not in text
        p12 = files["foreign.p12"].read_bytes()
        assert base64.b64encode(p12).decode()[:40] not in text
        assert PASSWORD not in text

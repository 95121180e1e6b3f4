"""Logging: JSON lines through stdlib, and no secret survives redaction anywhere in a line."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
import structlog

from devstack.pki import make_key, mint_certificate, to_pkcs12
from rotation.logconfig import REDACTED, configure_logging, redact

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJhdWQiOiJodHRwczovL3ZhdWx0LmF6dXJlLm5ldCIsInN1YiI6ImNlcnRyb3RhdGUifQ."
    "c2lnbmF0dXJlLXBhcnQtb2YtdGhlLWp3dC10b2tlbi1oZXJl"
)
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SIG = "sv=2024-01-01&ss=t&sig=Zm9vYmFyYmF6cXV4c2VjcmV0c2ln"


@pytest.fixture(name="secrets", scope="module")
def _secrets() -> dict[str, str]:
    """Real secret material: a PEM private key, a base64 PKCS#12, a JWT, keys and SAS."""
    leaf = mint_certificate("redaction test", key=make_key("ec", 256))
    return {
        "pem": leaf.key_pem.decode(),
        "pkcs12": base64.b64encode(to_pkcs12(leaf)).decode(),
        "jwt": JWT,
        "account_key": ACCOUNT_KEY,
        "sig": SIG,
    }


def _needles(secrets: dict[str, str]) -> list[str]:
    """Distinctive fragments that must not appear in any output."""
    pem_body = secrets["pem"].splitlines()[1]
    return [
        pem_body,
        secrets["pkcs12"][40:100],
        JWT.split(".")[1],
        ACCOUNT_KEY[:30],
        "Zm9vYmFyYmF6",
    ]


@pytest.fixture(name="log_stream")
def _log_stream():
    """The real JSON pipeline writing into a buffer (tests/conftest.py resets it afterwards)."""
    stream = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=stream)
    return stream


class TestRedact:
    def test_each_kind_of_secret_text_is_removed(self, secrets):
        """PEM key, PKCS#12 base64, bearer JWT, AccountKey= and sig= are all scrubbed."""
        text = (
            f"key {secrets['pem']} pfx {secrets['pkcs12']} Authorization: Bearer {JWT} "
            f"conn DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY}; sas ?{SIG}"
        )

        cleaned = str(redact(text))

        for needle in _needles(secrets):
            assert needle not in cleaned
        assert "AccountName=a" in cleaned

    def test_secret_keys_are_removed_in_nested_structures(self):
        """Values under secret-looking keys vanish at any depth; identifiers of secrets stay."""
        value = {
            "outer": [
                {
                    "password": "hunter2",
                    "client_secret": "s3cr3t",
                    "secret_id": "https://kv/secrets/a/1",
                }
            ],
            "connection_string": "x",
            "key_type": "RSA",
            "value": "raw-secret-value",
        }

        cleaned = redact(value)

        assert cleaned == {
            "outer": [
                {
                    "password": REDACTED,
                    "client_secret": REDACTED,
                    "secret_id": "https://kv/secrets/a/1",
                }
            ],
            "connection_string": REDACTED,
            "key_type": "RSA",
            "value": REDACTED,
        }

    def test_bytes_and_objects_are_never_shown_raw(self, secrets):
        """Bytes show only a length; objects are rendered and scrubbed."""
        error = RuntimeError(f"boom {secrets['pem']}")

        cleaned = redact({"blob": secrets["pem"].encode(), "error": error})

        assert isinstance(cleaned, dict)
        assert cleaned["blob"].startswith("[REDACTED ")
        assert "[REDACTED PEM]" in str(cleaned["error"])
        assert _needles(secrets)[0] not in str(cleaned["error"])

    def test_ordinary_values_are_untouched(self):
        """Thumbprints, URLs, ids and numbers pass through."""
        value = {
            "thumbprint": "A" * 40,
            "secret_identifier": "https://kv.vault.azure.net/secrets/partner-mtls/3f1c",
            "count": 3,
            "ok": True,
        }

        assert redact(value) == value


class TestJsonPipeline:
    def test_lines_are_json_with_utc_timestamp_and_context(self, log_stream):
        """One JSON object per line, with level, logger, UTC time and bound context."""
        structlog.contextvars.bind_contextvars(correlation_id="c-1")

        structlog.get_logger("rotation.test").info("rotation_started", certificate="partner-mtls")

        line = json.loads(log_stream.getvalue().splitlines()[-1])
        assert line["event"] == "rotation_started"
        assert line["correlation_id"] == "c-1"
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")

    def test_no_secret_survives_in_fields_nested_dicts_or_exceptions(self, log_stream, secrets):
        """Secrets in event fields, nested dicts, messages and exc_info text are all redacted."""
        log = structlog.get_logger("rotation.test")

        log.info(
            "fields",
            bundle=secrets["pkcs12"],
            note=f"token {JWT}",
            nested={"deep": [secrets["pem"]]},
        )
        message = "message with AccountKey=" + ACCOUNT_KEY
        log.warning(message, sas=SIG)
        try:
            raise ValueError(f"bad bundle {secrets['pem']} sig={SIG}")
        except ValueError:
            log.exception("failed")
        logging.getLogger("rotation.foreign").error("stdlib %s", f"Bearer {JWT}")

        output = log_stream.getvalue()
        assert len(output.splitlines()) == 4
        for needle in _needles(secrets):
            assert needle not in output
        assert "Traceback" in output

    def test_reconfiguring_does_not_duplicate_lines(self, log_stream):
        """configure_logging is idempotent: a second call replaces the handler."""
        configure_logging(json=True, stream=log_stream)

        structlog.get_logger("rotation.test").info("once")

        assert log_stream.getvalue().count('"once"') == 1

    def test_level_filters(self, log_stream):
        """Below the configured level nothing is written."""
        configure_logging(json=True, level="WARNING", stream=log_stream)

        structlog.get_logger("rotation.test").info("hidden")

        assert "hidden" not in log_stream.getvalue()

    def test_unknown_level_is_refused(self):
        """A misspelt level is a ValueError, not silence."""
        with pytest.raises(ValueError, match="log level"):
            configure_logging(level="LOUD", stream=io.StringIO())

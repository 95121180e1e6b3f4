"""ROTATION_CANARY* settings: values, defaults, and every problem named."""

from __future__ import annotations

import pytest

from devstack.pki import mint_certificate
from rotation.config.canary import CanarySettings, canary_settings
from rotation.domain.canary import CanaryMode


def test_defaults_are_warn_five_seconds_and_no_extra_ca():
    settings, problems = canary_settings({})

    assert problems == []
    assert settings == CanarySettings(mode=CanaryMode.WARN, timeout_seconds=5.0)


@pytest.mark.parametrize(("raw", "mode"), [("off", CanaryMode.OFF), (" Warn ", CanaryMode.WARN), ("ENFORCE", CanaryMode.ENFORCE)])  # fmt: skip
def test_modes_in_any_case(raw, mode):
    settings, problems = canary_settings({"ROTATION_CANARY": raw})

    assert (settings.mode, problems) == (mode, [])


def test_blank_values_mean_the_default():
    settings, problems = canary_settings({"ROTATION_CANARY": " ", "ROTATION_CANARY_TIMEOUT": ""})

    assert (settings.mode, settings.timeout_seconds, problems) == (CanaryMode.WARN, 5.0, [])


def test_timeout_and_server_ca(tmp_path):
    ca = tmp_path / "server-ca.pem"
    ca.write_bytes(mint_certificate("Backend Server CA", ca=True).pem * 2)

    settings, problems = canary_settings(
        {"ROTATION_CANARY_TIMEOUT": "2.5", "ROTATION_CANARY_SERVER_CA": str(ca)}
    )

    assert problems == []
    assert settings.timeout_seconds == 2.5
    assert settings.server_ca_path == ca
    assert [c.subject.rfc4514_string() for c in settings.server_ca] == ["O=certrotate test,CN=Backend Server CA"] * 2  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ROTATION_CANARY", "block", "ROTATION_CANARY: 'block' is not one of off, warn, enforce"),
        ("ROTATION_CANARY_TIMEOUT", "soon", "ROTATION_CANARY_TIMEOUT: 'soon' is not a number of seconds"),
        ("ROTATION_CANARY_TIMEOUT", "0", "ROTATION_CANARY_TIMEOUT: '0' must be a number of seconds > 0"),
        ("ROTATION_CANARY_TIMEOUT", "nan", "ROTATION_CANARY_TIMEOUT: 'nan' must be a number of seconds > 0"),
        ("ROTATION_CANARY_TIMEOUT", "30", "ROTATION_CANARY_TIMEOUT: '30' must be below Event Grid's 30 s delivery timeout"),
    ],
)  # fmt: skip
def test_bad_values_are_named(name, value, problem):
    settings, problems = canary_settings({name: value})

    assert problems == [problem]
    assert settings == CanarySettings()


def test_server_ca_problems_name_the_file(tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")

    _, missing = canary_settings({"ROTATION_CANARY_SERVER_CA": str(tmp_path / "nope.pem")})
    _, unreadable = canary_settings({"ROTATION_CANARY_SERVER_CA": str(empty)})

    assert missing == [f"ROTATION_CANARY_SERVER_CA: cannot read '{tmp_path / 'nope.pem'}' (No such file or directory)"]  # fmt: skip
    assert unreadable == [f"ROTATION_CANARY_SERVER_CA: '{empty}' holds no PEM certificate"]


def test_every_problem_is_reported_at_once(tmp_path):
    _, problems = canary_settings(
        {
            "ROTATION_CANARY": "yes",
            "ROTATION_CANARY_TIMEOUT": "-1",
            "ROTATION_CANARY_SERVER_CA": str(tmp_path),
        }
    )

    assert [p.split(":")[0] for p in problems] == [
        "ROTATION_CANARY", "ROTATION_CANARY_TIMEOUT", "ROTATION_CANARY_SERVER_CA",
    ]  # fmt: skip

"""Fixtures shared by every test. Suite-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

import structlog

pytest_plugins = ["tests.azurite", "tests.devstack_fixture"]


def pytest_configure() -> None:
    """Keep structlog's default configuration out of tests that do not configure it."""
    structlog.reset_defaults()

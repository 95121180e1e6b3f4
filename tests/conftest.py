"""Fixtures shared by every test. Suite-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = ["tests.azurite", "tests.devstack_fixture"]


def pytest_configure() -> None:
    """Keep structlog's default configuration out of tests that do not configure it."""
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Every test starts and ends with clean logging (structlog's own autouse reset): the CLI and
    the triggers configure structlog, bind contextvars and attach handlers to ``rotation``."""
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    logger = logging.getLogger("rotation")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)

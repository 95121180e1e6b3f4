"""The invariants every intake result must hold (shared by the property tests and the corpus).

``outcome(call)`` runs one intake call and returns its events or its ``InvalidEventError``;
anything else escaping fails the test. An accepted event must be printable (valid Unicode,
JSON-serialisable) and, when certrotate acts on it, carry an ASCII certificate name, version and
vault host by Azure's rules, with the host's first label equal to ``VaultName`` unless its
origin is allow-listed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import Disposition, KeyVaultEvent
from rotation.entrypoints.cli.events import event_to_dict

NAME = re.compile(r"[0-9A-Za-z-]{1,127}", re.ASCII)
VERSION = re.compile(r"[0-9A-Za-z]{1,64}", re.ASCII)
VAULT_NAME = re.compile(r"(?!.*--)[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]", re.ASCII)
HOST = re.compile(r"[0-9a-z]([0-9a-z-]*[0-9a-z])?(\.[0-9a-z]([0-9a-z-]*[0-9a-z])?)*", re.ASCII)
KV_SUFFIXES = (".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net")


def check_event(event: KeyVaultEvent, allowed: Iterable[str] = ()) -> None:
    """Assert one accepted event keeps the name and host rules and can be printed."""
    json.dumps(event_to_dict(event), ensure_ascii=False).encode("utf-8")
    for text in (event.event_id, event.event_type, event.vault_name, event.object_name):
        text.encode("utf-8")
    if event.disposition is Disposition.IGNORE:
        return
    assert NAME.fullmatch(event.object_name), event.object_name
    assert VERSION.fullmatch(event.version), event.version
    assert VAULT_NAME.fullmatch(event.vault_name), event.vault_name
    assert event.vault_url.isascii(), event.vault_url
    host = urlsplit(event.vault_url).hostname or ""
    assert HOST.fullmatch(host), host
    if event.vault_url not in {a.rstrip("/").lower() for a in allowed}:
        assert host.endswith(KV_SUFFIXES), host
        assert host.split(".", 1)[0] == event.vault_name.lower(), (host, event.vault_name)


def check_error(error: InvalidEventError) -> None:
    """Assert an error is printable and names where (or what) the problem is."""
    str(error).encode("utf-8")
    assert error.reason
    assert error.event_id is None or isinstance(error.event_id, str)


def outcome(
    call: Callable[[], list[KeyVaultEvent]], allowed: Iterable[str] = ()
) -> list[KeyVaultEvent] | InvalidEventError:
    """Run one intake call: its checked events, or its checked ``InvalidEventError``."""
    try:
        events = call()
    except InvalidEventError as exc:
        check_error(exc)
        return exc
    for event in events:
        check_event(event, allowed)
    return events

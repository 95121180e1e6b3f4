"""A whole delivery body (bytes) through intake, as a webhook receiving Event Grid's POST would
decode it: size bound, UTF-8, JSON (huge integers included, via ``rotation.intake.jsonstream``'s
decoder), then ``parse_payload``. Product code receives events already decoded (the Functions
host) or streams files (``JsonStream``); the property and corpus tests drive raw bytes here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import KeyVaultEvent
from rotation.intake.events import MAX_EVENTS, MAX_PAYLOAD_BYTES, parse_payload
from rotation.intake.jsonstream import loads


def parse_bytes(
    data: bytes,
    *,
    allowed_vault_urls: Iterable[str] = (),
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_events: int = MAX_EVENTS,
) -> list[KeyVaultEvent]:
    """Decode one delivery body (UTF-8 JSON, at most ``max_bytes``) and normalise it.

    Raises:
        InvalidEventError: too large, not UTF-8 JSON, or malformed (see ``parse_payload``).
    """
    if len(data) > max_bytes:
        raise InvalidEventError(f"payload is {len(data)} bytes; the limit is {max_bytes}")
    try:
        payload = loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidEventError("payload is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidEventError(f"payload is not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InvalidEventError("payload is nested too deeply") from None
    return parse_payload(payload, allowed_vault_urls=allowed_vault_urls, max_events=max_events)

"""One Key Vault event object → ``KeyVaultEvent``: the schema field readers and the trust checks.

The per-event half of the intake; ``rotation.intake.events`` handles whole deliveries, files and the
objects the Functions trigger hands over. Here: a case-insensitive view of an event's fields
(readers for text, ISO-8601 times with 7-digit fractions, epoch seconds and counts), either
schema (Event Grid or CloudEvents 1.0) and the dead-letter envelope, and the checks that make a
certificate event trusted: ``data.Id`` on a Key Vault host matching ``VaultName`` (or on an
allow-listed vault origin), naming the same object and version. Errors are
``InvalidEventError``s naming the field path, never echoing the payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from rotation.domain.errors import InvalidEventError
from rotation.domain.model import DeadLetterInfo, Disposition, KeyVaultEvent

__all__ = ["parse_event", "vault_origins"]

_KV_SUFFIXES = (".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net")
_DISPOSITIONS = {
    "microsoft.keyvault.certificatenewversioncreated": Disposition.ROTATE,
    "microsoft.keyvault.certificatenearexpiry": Disposition.ALERT,
    "microsoft.keyvault.certificateexpired": Disposition.ALERT,
}
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_VERSION = re.compile(r"^[0-9A-Za-z]{1,64}$")
_ARM_VAULT = re.compile(r"/providers/microsoft\.keyvault/vaults/([^/]+)$", re.IGNORECASE)
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


class _Fields:
    """Case-insensitive view of a JSON object; ambiguous duplicate keys are malformed."""

    def __init__(self, obj: Mapping[str, object], path: str) -> None:
        self.path = path
        self._items: dict[str, object] = {}
        for key, value in obj.items():
            folded = str(key).strip().casefold()
            if folded in self._items and self._items[folded] != value:
                raise InvalidEventError(
                    "has conflicting duplicate keys", path=self.at(folded[:40])
                )
            self._items[folded] = value

    def at(self, key: object) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def get(self, key: str) -> object:
        return self._items.get(key.casefold())

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise InvalidEventError("must be a non-empty string", path=self.at(key))
        return value.strip()

    def time(self, key: str) -> datetime | None:
        value = self.get(key)
        if value is None or isinstance(value, datetime):
            return value.astimezone(UTC) if isinstance(value, datetime) else None
        if not isinstance(value, str):
            raise InvalidEventError("must be an ISO-8601 time string", path=self.at(key))
        return _iso_time(value, self.at(key))

    def epoch(self, key: str) -> datetime | None:
        value = self.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEventError("must be Unix epoch seconds (number)", path=self.at(key))
        if not 0 <= value <= _MAX_EPOCH:
            raise InvalidEventError("is out of range for Unix epoch seconds", path=self.at(key))
        return datetime.fromtimestamp(int(value), tz=UTC)

    def count(self, key: str) -> int | None:
        value = self.get(key)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def _iso_time(value: str, path: str) -> datetime:
    text = value.strip()
    # Event Grid writes 7 fractional digits; Python parses at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEventError("is not an ISO-8601 time", path=path) from None
    if parsed.tzinfo is None:
        raise InvalidEventError("must carry a time zone (e.g. Z)", path=path)
    return parsed.astimezone(UTC)


def vault_origins(allowed_vault_urls: Iterable[str]) -> frozenset[str]:
    """The ``scheme://host[:port]`` origins of the allow-listed vault URLs."""
    origins = set()
    for url in allowed_vault_urls:
        parts = urlsplit(url.strip())
        if parts.hostname:
            port = f":{parts.port}" if parts.port else ""
            origins.add(f"{parts.scheme.lower()}://{parts.hostname.lower()}{port}")
    return frozenset(origins)


def _vault_url(data: _Fields, vault_name: str, origins: frozenset[str]) -> tuple[str, list[str]]:
    """Check ``data.Id`` and return (vault URL, path segments)."""
    raw = data.text("Id", required=True)
    at = f"{data.path}.Id"
    try:
        parts = urlsplit(raw)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        raise InvalidEventError("is not a URL", path=at) from None
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or not host:
        raise InvalidEventError("must be an https Key Vault URL", path=at)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidEventError("must not carry credentials, a query or a fragment", path=at)
    origin = f"https://{host}{port}"
    if origin not in origins:
        if not host.endswith(_KV_SUFFIXES) or port:
            raise InvalidEventError("is not on a Key Vault host or an allowed vault", path=at)
        if host.split(".", 1)[0] != vault_name.casefold():
            raise InvalidEventError("host does not match data.VaultName", path=at)
    return origin, parts.path.strip("/").split("/")


def _check(ok: object, message: str, path: str) -> None:
    if not ok:
        raise InvalidEventError(message, path=path)


def _certificate_event(
    fields: _Fields, event_type: str, schema: str, origins: frozenset[str]
) -> KeyVaultEvent:
    data = _data(fields)
    at = data.path
    vault_name = data.text("VaultName", required=True)
    object_type = data.text("ObjectType", required=True)
    name = data.text("ObjectName", required=True)
    version = data.text("Version", required=True)
    _check(object_type.casefold() == "certificate", "must be Certificate", f"{at}.ObjectType")
    _check(_NAME.match(name), "is not a Key Vault object name", f"{at}.ObjectName")
    _check(_VERSION.match(version), "is not a Key Vault version id", f"{at}.Version")
    vault_url, segments = _vault_url(data, vault_name, origins)
    _check(
        len(segments) == 3 and segments[0].casefold() == "certificates",  # noqa: PLR2004
        "path must be /certificates/{name}/{version}",
        f"{at}.Id",
    )
    _check(segments[1].casefold() == name.casefold(), "names another ObjectName", f"{at}.Id")
    _check(segments[2].casefold() == version.casefold(), "names another Version", f"{at}.Id")
    source_key = "source" if schema == "cloudevents" else "topic"
    match = _ARM_VAULT.search(fields.text(source_key))
    _check(
        not match or match.group(1).casefold() == vault_name.casefold(),
        "names a different vault than data.VaultName",
        fields.at(source_key),
    )
    return _event(
        fields, event_type, schema, vault_name=vault_name, vault_url=vault_url,
        object_type="Certificate", object_name=segments[1], version=segments[2],
        not_before=data.epoch("NBF"), expires=data.epoch("EXP"),
    )  # fmt: skip


def _data(fields: _Fields) -> _Fields:
    data = fields.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            data = None
    if not isinstance(data, dict):
        raise InvalidEventError("must be a JSON object", path=fields.at("data"))
    return _Fields(data, fields.at("data"))


def _other_event(fields: _Fields, event_type: str, schema: str) -> KeyVaultEvent:
    """An event certrotate does not act on: fill what is there, never fail on its data."""
    data = fields.get("data")
    try:
        d = _Fields(data if isinstance(data, dict) else {}, fields.at("data"))
    except InvalidEventError:
        d = _Fields({}, "")
    text = {
        k: v.strip() if isinstance(v := d.get(k), str) else ""
        for k in ("VaultName", "ObjectType", "ObjectName", "Version")
    }
    return _event(
        fields, event_type, schema, vault_name=text["VaultName"], vault_url="",
        object_type=text["ObjectType"], object_name=text["ObjectName"], version=text["Version"],
        not_before=None, expires=None,
    )  # fmt: skip


def _event(fields: _Fields, event_type: str, schema: str, **values: object) -> KeyVaultEvent:
    acting = event_type.casefold() in _DISPOSITIONS
    time_key = "time" if schema == "cloudevents" else "eventTime"
    reason, attempts = fields.get("deadLetterReason"), fields.count("deliveryAttempts")
    outcome = fields.get("lastDeliveryOutcome")
    deadletter = None
    if reason is not None or attempts is not None or outcome is not None:
        deadletter = DeadLetterInfo(
            reason=reason if isinstance(reason, str) else None,
            attempts=attempts,
            last_outcome=outcome if isinstance(outcome, str) else None,
        )
    return KeyVaultEvent(
        event_id=fields.text("id", required=acting)
        if acting or isinstance(fields.get("id"), str)
        else "",
        event_type=event_type,
        schema=schema,
        event_time=fields.time(time_key) if acting else _lenient_time(fields, time_key),
        deadletter=deadletter,
        disposition=_DISPOSITIONS.get(event_type.casefold(), Disposition.IGNORE),
        **values,  # type: ignore[arg-type]
    )


def _lenient_time(fields: _Fields, key: str) -> datetime | None:
    try:
        return fields.time(key)
    except InvalidEventError:
        return None


def parse_event(obj: object, path: str, origins: frozenset[str]) -> KeyVaultEvent:
    """Normalise one decoded event object; ``path`` prefixes field paths in errors.

    Raises:
        InvalidEventError: the event is malformed or forged (the message names the field).
    """
    if not isinstance(obj, dict):
        raise InvalidEventError("must be a JSON object (one event)", path=path or "event")
    fields = _Fields(obj, path)
    schema = "cloudevents" if fields.get("specversion") is not None else "eventgrid"
    type_key = "type" if schema == "cloudevents" else "eventType"
    event_type = fields.text(type_key, required=True)
    if event_type.casefold() in _DISPOSITIONS:
        return _certificate_event(fields, event_type, schema, origins)
    return _other_event(fields, event_type, schema)

"""One Key Vault event object → ``KeyVaultEvent``: the schema field readers and the trust checks.

The per-event half of the intake; ``rotation.intake.events`` handles whole deliveries, files and the
objects the Functions trigger hands over. Here: a case-insensitive view of an event's fields
(readers for text, ISO-8601 times with 7-digit fractions, epoch seconds and counts), either
schema (Event Grid or CloudEvents 1.0) and the dead-letter envelope, and the checks that make a
certificate event trusted: ``data.Id`` on a Key Vault host matching ``VaultName`` (or on an
allow-listed vault origin), naming the same object and version. Errors are
``InvalidEventError``s naming the field path, never echoing the payload.

The intake is total: any JSON-shaped input gives a ``KeyVaultEvent`` or an ``InvalidEventError``,
nothing else (numbers of any size, times at the calendar's edges, nesting, lone surrogates).
Names, versions, vault names and hosts are checked as ASCII by Azure's rules *before* any
comparison, and compared with ASCII case folding only: Unicode case folding would let
``partner-mtl\u017f`` (long s) equal ``partner-mtls`` or a Kelvin-sign host equal ``k…``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from rotation.domain.clouds import ALL_VAULT_SUFFIXES
from rotation.domain.errors import InvalidEventError
from rotation.domain.model import DeadLetterInfo, Disposition, KeyVaultEvent
from rotation.intake.jsonstream import loads

__all__ = ["event_id_of", "fold", "parse_event", "vault_origins"]

_KV_SUFFIXES = tuple(f".{suffix}" for suffix in ALL_VAULT_SUFFIXES)  # every known cloud
_DISPOSITIONS = {
    "microsoft.keyvault.certificatenewversioncreated": Disposition.ROTATE,
    "microsoft.keyvault.certificatenearexpiry": Disposition.ALERT,
    "microsoft.keyvault.certificateexpired": Disposition.ALERT,
}
# Azure's rules: certificate names 1-127 letters, digits and hyphens; versions (32 hex digits
# in Azure, any 1-64 ASCII letters/digits tolerated); vault names 3-24 letters, digits and single
# hyphens, starting with a letter and ending with a letter or digit; DNS host names.
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}", re.ASCII)
_VERSION = re.compile(r"[0-9A-Za-z]{1,64}", re.ASCII)
_VAULT_NAME = re.compile(r"(?!.*--)[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]", re.ASCII)
_LABEL = r"[0-9a-z](?:[0-9a-z-]{0,61}[0-9a-z])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_ARM_VAULT = re.compile(
    r"/providers/microsoft\.keyvault/vaults/([^/]+)$", re.IGNORECASE | re.ASCII
)
_MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z
_MAX_COUNT = 2**31 - 1
_COUNT = re.compile(r"[0-9]{1,10}", re.ASCII)
_EPOCH_TEXT = re.compile(r"\s*-?[0-9]{1,20}(\.[0-9]{1,20})?\s*", re.ASCII)
_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+", re.ASCII)
_TOPIC = re.compile(r"[!-~]{1,512}", re.ASCII)  # printable ASCII: ARM ids are far shorter


def fold(text: str) -> str:
    """ASCII case folding (``str.lower`` on ASCII only): the only folding Azure names get.

    Non-ASCII text is returned unchanged, so it never equals an ASCII name.
    """
    return text.lower() if text.isascii() else text


def _safe_key(key: str) -> str:
    """A key fit for an error path: printable ASCII, anything else escaped, at most 40 chars."""
    return key[:40].encode("ascii", "backslashreplace").decode("ascii")


def _unicode_ok(text: str) -> bool:
    """False for text holding lone surrogates (JSON allows them; UTF-8 output does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Fields:
    """Case-insensitive view of a JSON object; ambiguous duplicate keys are malformed."""

    def __init__(self, obj: Mapping[str, object], path: str) -> None:
        self.path = path
        self._items: dict[str, object] = {}
        for key, value in obj.items():
            folded = fold(str(key).strip())
            if folded in self._items and self._items[folded] != value:
                raise InvalidEventError(
                    "has conflicting duplicate keys", path=self.at(_safe_key(folded))
                )
            self._items[folded] = value

    def at(self, key: object) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def get(self, key: str) -> object:
        return self._items.get(fold(key))

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise InvalidEventError("must be a non-empty string", path=self.at(key))
        if not _unicode_ok(value):
            raise InvalidEventError("is not valid Unicode text", path=self.at(key))
        return value.strip()

    def time(self, key: str) -> datetime | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, datetime):
            return _utc(value, self.at(key))
        if not isinstance(value, str):
            raise InvalidEventError("must be an ISO-8601 time string", path=self.at(key))
        return _iso_time(value, self.at(key))

    def epoch(self, key: str) -> datetime | None:
        value = self.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str) and _EPOCH_TEXT.fullmatch(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEventError("must be Unix epoch seconds (number)", path=self.at(key))
        if not 0 <= value <= _MAX_EPOCH:  # also refuses NaN and the infinities
            raise InvalidEventError("is out of range for Unix epoch seconds", path=self.at(key))
        return datetime.fromtimestamp(int(value), tz=UTC)

    def count(self, key: str) -> int | None:
        """A non-negative count (dead-letter metadata certrotate never acts on): an int or ASCII
        digits up to 2**31-1; anything else (``"\u00b2"``, 5,000 digits, -1) reads as absent."""
        value = self.get(key)
        if isinstance(value, str) and _COUNT.fullmatch(value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value if 0 <= value <= _MAX_COUNT else None


def _iso_time(value: str, path: str) -> datetime:
    text = value.strip()
    if not text.isascii() or len(text) > 64:  # noqa: PLR2004 - far longer than any ISO time
        raise InvalidEventError("is not an ISO-8601 time", path=path)
    # Event Grid writes 7 fractional digits; Python parses at most 6.
    text = _FRACTION.sub(r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEventError("is not an ISO-8601 time", path=path) from None
    return _utc(parsed, path)


def _utc(value: datetime, path: str) -> datetime:
    """``value`` in UTC; it must carry a zone, and UTC must still be inside years 1-9999
    (``0001-01-01T00:00:00+05:00`` is not)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEventError("must carry a time zone (e.g. Z)", path=path)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidEventError("is out of range once converted to UTC", path=path) from None


def vault_origins(allowed_vault_urls: Iterable[str]) -> frozenset[str]:
    """The ``scheme://host[:port]`` origins of the allow-listed vault URLs."""
    origins = set()
    for url in allowed_vault_urls:
        try:
            parts = urlsplit(url.strip())
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            continue
        if parts.hostname and parts.netloc.isascii():
            origins.add(f"{fold(parts.scheme)}://{fold(parts.hostname)}{port}")
    return frozenset(origins)


def _vault_url(data: _Fields, vault_name: str, origins: frozenset[str]) -> tuple[str, list[str]]:
    """Check ``data.Id`` and return (vault URL, path segments)."""
    raw = data.text("Id", required=True)
    at = f"{data.path}.Id"
    if not raw.isascii():  # before urlsplit, which lower-cases hosts with Unicode folding
        raise InvalidEventError("must be an ASCII URL", path=at)
    try:
        parts = urlsplit(raw)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        raise InvalidEventError("is not a URL", path=at) from None
    host = fold(parts.hostname or "")
    if fold(parts.scheme) != "https" or not host:
        raise InvalidEventError("must be an https Key Vault URL", path=at)
    if not _HOST.fullmatch(host) and not _is_ip(host):
        raise InvalidEventError("host is not a DNS name", path=at)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidEventError("must not carry credentials, a query or a fragment", path=at)
    origin = f"https://{host}{port}"
    if origin not in origins:
        if not host.endswith(_KV_SUFFIXES) or port:
            raise InvalidEventError("is not on a Key Vault host or an allowed vault", path=at)
        if host.split(".", 1)[0] != fold(vault_name):
            raise InvalidEventError("host does not match data.VaultName", path=at)
    return origin, parts.path.strip("/").split("/")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
    _check(fold(object_type) == "certificate", "must be Certificate", f"{at}.ObjectType")
    _check(_VAULT_NAME.fullmatch(vault_name), "is not a Key Vault name", f"{at}.VaultName")
    _check(_NAME.fullmatch(name), "is not a Key Vault object name", f"{at}.ObjectName")
    _check(_VERSION.fullmatch(version), "is not a Key Vault version id", f"{at}.Version")
    vault_url, segments = _vault_url(data, vault_name, origins)
    _check(
        len(segments) == 3 and fold(segments[0]) == "certificates",  # noqa: PLR2004
        "path must be /certificates/{name}/{version}",
        f"{at}.Id",
    )
    _check(_NAME.fullmatch(segments[1]), "path holds no Key Vault object name", f"{at}.Id")
    _check(_VERSION.fullmatch(segments[2]), "path holds no Key Vault version id", f"{at}.Id")
    _check(fold(segments[1]) == fold(name), "names another ObjectName", f"{at}.Id")
    _check(fold(segments[2]) == fold(version), "names another Version", f"{at}.Id")
    source_key = "source" if schema == "cloudevents" else "topic"
    match = _ARM_VAULT.search(fields.text(source_key))
    _check(
        not match or fold(match.group(1)) == fold(vault_name),
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
            data = loads(data)
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
        k: v.strip() if isinstance(v := d.get(k), str) and _unicode_ok(v) else ""
        for k in ("VaultName", "ObjectType", "ObjectName", "Version")
    }
    return _event(
        fields, event_type, schema, vault_name=text["VaultName"], vault_url="",
        object_type=text["ObjectType"], object_name=text["ObjectName"], version=text["Version"],
        not_before=None, expires=None,
    )  # fmt: skip


def _event(fields: _Fields, event_type: str, schema: str, **values: object) -> KeyVaultEvent:
    acting = fold(event_type) in _DISPOSITIONS
    time_key = "time" if schema == "cloudevents" else "eventTime"
    reason, attempts = fields.get("deadLetterReason"), fields.count("deliveryAttempts")
    outcome = fields.get("lastDeliveryOutcome")
    deadletter = None
    if reason is not None or attempts is not None or outcome is not None:
        deadletter = DeadLetterInfo(
            reason=reason if isinstance(reason, str) and _unicode_ok(reason) else None,
            attempts=attempts,
            last_outcome=outcome if isinstance(outcome, str) and _unicode_ok(outcome) else None,
        )
    return KeyVaultEvent(
        event_id=fields.text("id", required=acting) if acting else _lenient_id(fields),
        event_type=event_type,
        schema=schema,
        event_time=fields.time(time_key) if acting else _lenient_time(fields, time_key),
        deadletter=deadletter,
        disposition=_DISPOSITIONS.get(fold(event_type), Disposition.IGNORE),
        topic=_topic(fields, schema),
        **values,  # type: ignore[arg-type]
    )


def _lenient_id(fields: _Fields) -> str:
    value = fields.get("id")
    return value.strip() if isinstance(value, str) and _unicode_ok(value) else ""


def _topic(fields: _Fields, schema: str) -> str:
    """Who delivered the event, for its audit record: the Event Grid schema's ``topic`` (stamped by
    the topic that delivered it: the vault's system topic, or a replay topic for a re-drive), or
    CloudEvents' ``source``. Never decides anything; "" unless printable ASCII of at most 512
    characters (the audit record redacts it like a log line: ``rotation.rollout.record``)."""
    value = fields.get("source" if schema == "cloudevents" else "topic")
    if not isinstance(value, str) or not _TOPIC.fullmatch(value.strip()):
        return ""
    return value.strip()


def event_id_of(obj: object) -> str | None:
    """The ``id`` of an event object that may be malformed (for its audit record), else None.

    Never raises: only a string ``id`` of valid Unicode, at most 128 characters, is returned.
    """
    if not isinstance(obj, dict):
        return None
    for key, value in obj.items():
        if isinstance(key, str) and fold(key.strip()) == "id" and isinstance(value, str):
            text = value.strip()
            if text and len(text) <= 128 and _unicode_ok(text):  # noqa: PLR2004
                return text
    return None


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
    try:
        fields = _Fields(obj, path)
        schema = "cloudevents" if fields.get("specversion") is not None else "eventgrid"
        type_key = "type" if schema == "cloudevents" else "eventType"
        event_type = fields.text(type_key, required=True)
        if fold(event_type) in _DISPOSITIONS:
            return _certificate_event(fields, event_type, schema, origins)
        return _other_event(fields, event_type, schema)
    except InvalidEventError as exc:
        exc.event_id = event_id_of(obj)
        raise
    except RecursionError:  # comparing deeply nested duplicate values
        raise InvalidEventError(
            "is nested too deeply", path=path or "event", event_id=event_id_of(obj)
        ) from None

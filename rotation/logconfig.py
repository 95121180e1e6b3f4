"""structlog configuration and the redaction that keeps secrets out of every log line.

``configure_logging()`` routes structlog through stdlib ``logging`` (the Functions worker consumes
stdlib logging, and the host forwards the worker's stdout): loggers under ``rotation`` get one
handler writing JSON lines (or ``ConsoleRenderer`` output for a CLI on a TTY) to stdout.
``merge_contextvars`` runs first, timestamps are UTC ISO-8601, and ``redact`` runs last before
rendering, on structlog and foreign records alike, including formatted exception text.

``redact(value)`` removes values under secret-looking keys (password, secret, token, key,
connection_string, credential, authorization, ...) and secret-looking text wherever it appears:
PEM blocks, long base64 runs (PKCS#12/DER bodies), bearer tokens and JWTs, ``AccountKey=``,
``SharedAccessSignature=``, ``sig=`` and similar connection-string parts.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from rotation.domain.model import Trigger

__all__ = [
    "REDACTED",
    "bind_correlation",
    "configure_logging",
    "quiet_library_logs",
    "redact",
    "redact_processor",
]

REDACTED = "[REDACTED]"
_LOGGER_NAME = "rotation"
_HANDLER_MARK = "_certrotate_handler"

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|(^|_)key$|^key_?value$|private_?key|account_?key|"
    r"api_?key|connection_?string|conn_?str|credential|authorization|cookie|signature|^sig$|"
    r"^sas$|pfx|pkcs12|^pem$|^value$|^secret_?value$",
    re.IGNORECASE,
)
# Identifiers and descriptions *of* secrets are not secrets: secret_id, key_type, token_url ...
_SAFE_KEY = re.compile(
    r"_(id|ids|identifier|url|name|type|size|count|version|uri)$", re.IGNORECASE
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)"),
        "[REDACTED PEM]",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[REDACTED JWT]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(SharedAccessSignature\s*=\s*)[^;\s\"']+"), r"\1" + REDACTED),
    (
        re.compile(
            r"(?i)\b(AccountKey|SharedAccessKey|sig|password|pwd|client_secret|secret|token|"
            r"access_token|refresh_token|code)(\s*=\s*)[^;&\s\"',]+"
        ),
        r"\1\2" + REDACTED,
    ),
    # PKCS#12 / DER / PEM bodies without armour: long base64 runs, possibly wrapped in lines.
    (re.compile(r"(?:[A-Za-z0-9+/_-]{40,}={0,2}[\r\n]*){3,}"), "[REDACTED BASE64]"),
)


def _redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _secret_key(key: object) -> bool:
    name = str(key)
    return bool(_SECRET_KEY.search(name)) and not _SAFE_KEY.search(name)


def redact(value: object) -> object:
    """``value`` with secret-looking keys and text replaced (dicts, lists and tuples deeply).

    Strings are scrubbed; bytes are never shown (only their length); numbers, booleans and
    ``None`` pass through; dates become ISO strings; anything else is rendered with ``str`` and
    scrubbed, so exceptions and objects cannot smuggle a secret past the renderer.
    """
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    return _redact_scalar(value)


def _redact_scalar(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[REDACTED {len(bytes(value))} BYTES]"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return _redact_text(str(value))


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``redact`` every value except stdlib's private ``_record`` fields."""
    return {
        key: value if key.startswith("_") else (REDACTED if _secret_key(key) else redact(value))
        for key, value in event_dict.items()
    }


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def quiet_library_logs() -> None:
    """Keep pyhanko-certvalidator's log off stderr: it logs every refused CRL issuer path with a
    traceback at WARNING, while the reason reaches the validation findings anyway."""
    quiet = logging.getLogger("pyhanko_certvalidator")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    quiet.propagate = False


def _not_audit(record: logging.LogRecord) -> bool:
    """A handler filter letting everything through but audit records (``audit=True``)."""
    return not (isinstance(record.msg, dict) and record.msg.get("audit") is True)


def configure_logging(
    *,
    json: bool | None = None,
    level: str = "INFO",
    stream: TextIO | None = None,
    audit_lines: bool = True,
) -> None:
    """Configure structlog and the ``rotation`` stdlib logger. Safe to call on every invocation.

    ``json=None`` picks JSON unless ``stream`` (default ``sys.stdout``) is a TTY. Calling it again
    replaces certrotate's handler instead of adding a second one. ``audit_lines=False`` keeps
    audit records off ``stream`` (a CLI that reports them itself); other handlers on the
    ``rotation`` logger (App Insights) still get them.

    Raises:
        ValueError: ``level`` is not a logging level name.
    """
    out = stream if stream is not None else sys.stdout
    as_json = json if json is not None else not out.isatty()
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    if not audit_lines:
        handler.addFilter(_not_audit)
    setattr(handler, _HANDLER_MARK, True)
    logger = logging.getLogger(_LOGGER_NAME)
    for old in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(numeric)
    # The Functions worker's root handler would ship the same line a second time.
    logger.propagate = False
    quiet_library_logs()
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.filter_by_level,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def bind_correlation(
    *,
    trigger: Trigger,
    eventgrid_event_id: str | None = None,
    correlation_id: str | None = None,
) -> str:
    """Start a fresh log context for one invocation and return its correlation id.

    Clears any context left by a previous invocation on this worker thread, then binds
    ``correlation_id`` (and the same value as ``rotation_id``), ``trigger`` and, for Event Grid,
    ``eventgrid_event_id``.
    """
    structlog.contextvars.clear_contextvars()
    cid = correlation_id or str(uuid.uuid4())
    context: dict[str, object] = {
        "correlation_id": cid,
        "rotation_id": cid,
        "trigger": str(trigger),
    }
    if eventgrid_event_id is not None:
        context["eventgrid_event_id"] = eventgrid_event_id
    structlog.contextvars.bind_contextvars(**context)
    return cid

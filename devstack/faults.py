"""Fault injection and request logging for the stand-ins.

A ``FaultRule`` matches requests by method and a glob on the path (``*/backends/*``) and fires
either for the next ``count`` matching requests or with a ``probability`` (seeded, so runs are
reproducible). Kinds:

- ``status``: answer ``status`` (429/500/503/...) with the service's error body; 429 carries
  ``Retry-After`` (default 1 s), 503 only when ``retry_after`` is given, nothing else ever does.
- ``latency``: wait ``latency`` seconds, then serve the request normally.
- ``reset``: drop the connection with a TCP reset, no response.
- ``concurrent_write``: bump the target entity's ETag first, as if another writer got there
  first; a request carrying the old ``If-Match`` then gets a genuine 412.
- ``keyvault_refresh_failure``: the APIM stand-in's next Key Vault fetch for a matching
  certificate fails (``keyVault.lastStatus`` shows it; the thumbprint stays as it was).
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["FaultInjector", "FaultKind", "FaultRule", "LoggedRequest", "RequestLog"]


class FaultKind(StrEnum):
    """What a fault rule does to a matching request."""

    STATUS = "status"
    LATENCY = "latency"
    RESET = "reset"
    CONCURRENT_WRITE = "concurrent_write"
    KEYVAULT_REFRESH_FAILURE = "keyvault_refresh_failure"


_RETRY_AFTER_STATUSES = (429, 503)


@dataclass(slots=True, kw_only=True)
class FaultRule:
    """One fault: which requests it matches and what it does. ``remaining=None`` is unlimited."""

    kind: FaultKind
    path: str = "*"
    method: str = "*"
    status: int = 503
    retry_after: float | None = None
    latency: float = 0.0
    remaining: int | None = 1
    probability: float | None = None
    fired: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        """True when the method and the path glob match (method ``*`` matches any)."""
        method_ok = self.method == "*" or self.method.upper() == method.upper()
        return method_ok and fnmatch.fnmatchcase(path.lower(), self.path.lower())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (for ``GET /_devstack/faults``)."""
        return {**asdict(self), "kind": str(self.kind)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from the admin endpoint's JSON.

        Raises:
            ValueError: naming the field that is wrong.
        """
        known = {"kind", "path", "method", "status", "retry_after", "latency", "count"}
        unknown = set(data) - known - {"probability", "server"}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        try:
            kind = FaultKind(data.get("kind", ""))
        except ValueError:
            choices = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"'kind' must be one of: {choices}") from None
        return make_rule(
            kind,
            path=_typed(data, "path", str, "*"),
            method=_typed(data, "method", str, "*"),
            status=_typed(data, "status", int, 503),
            retry_after=_typed(data, "retry_after", (int, float), None),
            latency=_typed(data, "latency", (int, float), 0.0),
            count=_typed(data, "count", int, None),
            probability=_typed(data, "probability", (int, float), None),
        )


def _typed(data: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    value = data.get(key, default)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"fault field {key!r} has the wrong type")
    return value


def make_rule(
    kind: FaultKind,
    *,
    path: str = "*",
    method: str = "*",
    status: int = 503,
    retry_after: float | None = None,
    latency: float = 0.0,
    count: int | None = None,
    probability: float | None = None,
) -> FaultRule:
    """Validate and build a rule: ``count`` (default 1) or ``probability`` (unlimited count).

    Raises:
        ValueError: a value is out of range or ``retry_after`` is set on a status that must not
            carry ``Retry-After`` (the SDKs retry *any* status that has it).
    """
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise ValueError("'probability' must be between 0 and 1")
    if count is not None and count < 1:
        raise ValueError("'count' must be at least 1")
    if not 100 <= status <= 599:
        raise ValueError("'status' must be an HTTP status code")
    if kind is FaultKind.STATUS and status == 429 and retry_after is None:
        retry_after = 1
    if retry_after is not None and (status not in _RETRY_AFTER_STATUSES or retry_after < 0):
        raise ValueError("'retry_after' is only allowed (>= 0) on 429 and 503")
    if latency < 0:
        raise ValueError("'latency' must be >= 0")
    remaining = count if count is not None else (None if probability is not None else 1)
    return FaultRule(
        kind=kind,
        path=path,
        method=method,
        status=status,
        retry_after=retry_after,
        latency=float(latency),
        remaining=remaining,
        probability=probability,
    )


class FaultInjector:
    """Thread-safe set of fault rules for one stand-in server (the in-process API)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)

    def add(self, kind: FaultKind | str, path: str = "*", **options: Any) -> FaultRule:
        """Add a rule (see ``make_rule`` for the options) and return it.

        Raises:
            ValueError: an option is invalid.
        """
        rule = make_rule(FaultKind(kind), path=path, **options)
        return self.add_rule(rule)

    def add_rule(self, rule: FaultRule) -> FaultRule:
        """Add a rule built elsewhere (e.g. ``FaultRule.from_json``)."""
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(self, path: str = "*", *, status: int = 503, **options: Any) -> FaultRule:
        """Answer matching requests with ``status`` (429 gets ``Retry-After``)."""
        return self.add(FaultKind.STATUS, path, status=status, **options)

    def delay(self, path: str = "*", *, seconds: float, **options: Any) -> FaultRule:
        """Add ``seconds`` of latency to matching requests."""
        return self.add(FaultKind.LATENCY, path, latency=seconds, **options)

    def reset(self, path: str = "*", **options: Any) -> FaultRule:
        """Reset the connection of matching requests."""
        return self.add(FaultKind.RESET, path, **options)

    def concurrent_write(self, path: str = "*", **options: Any) -> FaultRule:
        """Bump the target entity's ETag before matching requests (a genuine 412 follows)."""
        return self.add(FaultKind.CONCURRENT_WRITE, path, **options)

    def keyvault_refresh_failure(self, path: str = "*", **options: Any) -> FaultRule:
        """Fail the APIM stand-in's next Key Vault fetch for matching certificate paths."""
        return self.add(FaultKind.KEYVAULT_REFRESH_FAILURE, path, **options)

    def seed(self, value: int) -> None:
        """Re-seed the probability draws."""
        with self._lock:
            self._random.seed(value)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """A snapshot of the active rules."""
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str, kinds: Iterable[FaultKind]) -> FaultRule | None:
        """The first rule of one of ``kinds`` that fires for this request (consuming one count)."""
        wanted = set(kinds)
        with self._lock:
            for rule in self._rules:
                if rule.kind not in wanted or not rule.matches(method, path):
                    continue
                if rule.probability is not None and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule
        return None


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request a stand-in served: method, path (no query) and the status it answered."""

    method: str
    path: str
    status: int


class RequestLog:
    """Thread-safe, clearable log of the requests one stand-in served (for call-count tests),
    and how many of them were being handled at once (``in_flight``, ``peak_in_flight``): a
    request counts from when its body is read to just before its answer is sent, fault latency
    included, so a client with at most N requests outstanding is never seen above N."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []
        self._in_flight = 0
        self._peak = 0

    def started(self) -> None:
        """A logged request is being handled."""
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def finished(self) -> None:
        """A logged request's answer is about to be sent (or its connection reset)."""
        with self._lock:
            self._in_flight -= 1

    def peak_in_flight(self) -> int:
        """The most requests handled at once since the log was created or cleared."""
        with self._lock:
            return self._peak

    def append(self, entry: LoggedRequest) -> None:
        """Record one request."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        """A snapshot, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every entry, and the peak (to the requests in flight now)."""
        with self._lock:
            self._entries.clear()
            self._peak = self._in_flight

    def count(self, method: str = "*", path: str = "*") -> int:
        """How many logged requests match ``method`` and the path glob."""
        probe = FaultRule(kind=FaultKind.STATUS, path=path, method=method)
        return sum(1 for e in self.entries() if probe.matches(e.method, e.path))

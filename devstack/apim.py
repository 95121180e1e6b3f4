"""APIM semantics behind the ARM stand-in: Key Vault fetches, OData filters, paging, merge.

Pure helpers over ``devstack.state``; ``devstack.arm`` does the HTTP. APIM computes a Key
Vault-backed certificate's ``subject``/``thumbprint``/``expirationDate`` by fetching the secret
with its managed identity; here that fetch is an in-process lookup in the Key Vault stand-in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from devstack.state import DevstackState, KvVersion

__all__ = [
    "FilterError",
    "compile_filter",
    "fetch_from_key_vault",
    "iso_timestamp",
    "merge_patch",
    "paginate",
    "status_failed",
    "status_success",
]

_SECRET_PATH = re.compile(r"^/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?$")
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_PAGE = 100
_SAFE = "$'(),"


def iso_timestamp(seconds: float) -> str:
    """ARM's 7-fractional-digit UTC timestamp."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def fetch_from_key_vault(state: DevstackState, identifier: str) -> tuple[KvVersion | None, str]:
    """Resolve a secret identifier like APIM does: ``(version, "")`` or ``(None, why it failed)``.

    A versionless identifier resolves to the newest enabled version.
    """
    parts = urlsplit(identifier)
    match = _SECRET_PATH.match(parts.path)
    if parts.scheme != "https" or match is None:
        return None, "The secret identifier is not a Key Vault secret URL."
    if (parts.hostname or "") not in _LOCAL_HOSTS:
        return None, "The devstack can only reach its own Key Vault (127.0.0.1)."
    name, version = match.group("name"), match.group("version")
    with state.lock:
        entry = state.kv.get(name, version) if version else state.kv.newest_enabled(name)
    if entry is None:
        return (
            None,
            f"Secret '{name}' (version '{version or 'latest'}') was not found in Key Vault.",
        )
    if not entry.enabled:
        return None, "Operation get is not allowed on a disabled secret."
    return entry, ""


def status_success(now: float) -> dict[str, Any]:
    """``keyVault.lastStatus`` after a good fetch."""
    return {"code": "Success", "timeStampUtc": iso_timestamp(now)}


def status_failed(now: float, message: str) -> dict[str, Any]:
    """``keyVault.lastStatus`` after a failed fetch (``code`` ``Failed``, with the reason)."""
    return {"code": "Failed", "message": message, "timeStampUtc": iso_timestamp(now)}


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` deletes, the rest replace."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


class FilterError(ValueError):
    """An OData ``$filter`` the stand-in does not support (message names the clause)."""


_STRING = r"'((?:[^']|'')*)'"
_CLAUSES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str, str]]]] = [
    (re.compile(rf"^(\w+)\s+(eq|ne)\s+{_STRING}$"), lambda m: (m[1], m[2], m[3])),
    (
        re.compile(rf"^substringof\(\s*{_STRING}\s*,\s*(\w+)\s*\)$"),
        lambda m: (m[2], "contains", m[1]),
    ),
    (
        re.compile(rf"^(contains|startswith|endswith)\(\s*(\w+)\s*,\s*{_STRING}\s*\)$"),
        lambda m: (m[2], m[1], m[3]),
    ),
]
_OPS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "contains": lambda a, b: b in a,
    "startswith": str.startswith,
    "endswith": str.endswith,
}


def _split_and(expression: str) -> list[str]:
    clauses, current, quoted = [], "", False
    tokens = re.split(r"(\s+and\s+|')", expression)
    for token in tokens:
        if token == "'":
            quoted = not quoted
        if not quoted and re.fullmatch(r"\s+and\s+", token or ""):
            clauses.append(current.strip())
            current = ""
        else:
            current += token
    clauses.append(current.strip())
    return clauses


def _clause_test(
    getter: Callable[[Any], str | None], compare: Callable[[str, str], bool], value: str
) -> Callable[[Any], bool]:
    return lambda entity: compare((getter(entity) or "").lower(), value)


def compile_filter(
    expression: str, fields: Mapping[str, Callable[[Any], str | None]]
) -> Callable[[Any], bool]:
    """Compile ``name eq 'x'``, ``substringof('x', name)``, ``contains|startswith|endswith(f, 'x')``
    clauses joined by ``and`` over ``fields`` (case-insensitive, as APIM compares).

    Raises:
        FilterError: naming the clause or field that is not supported.
    """
    tests: list[Callable[[Any], bool]] = []
    for clause in _split_and(expression):
        for pattern, unpack in _CLAUSES:
            match = pattern.match(clause)
            if match:
                field, op, literal = unpack(match)
                break
        else:
            raise FilterError(f"unsupported $filter clause: {clause!r}")
        if field not in fields:
            raise FilterError(f"$filter field {field!r} is not filterable here")
        getter, compare = fields[field], _OPS[op]
        value = literal.replace("''", "'").lower()
        tests.append(_clause_test(getter, compare, value))
    return lambda entity: all(test(entity) for test in tests)


def paginate(
    items: list[Any], query: Mapping[str, str], base_url: str, path: str
) -> tuple[list[Any], str | None]:
    """Slice one page (``$top`` default 100, ``$skip``) and the absolute ``nextLink`` if more remain.

    Raises:
        FilterError: ``$top``/``$skip`` are not integers in range (reported as a 400).
    """
    try:
        top = int(query.get("$top") or _PAGE)
        skip = int(query.get("$skip") or 0)
    except ValueError:
        raise FilterError("$top and $skip must be integers") from None
    if top < 1 or skip < 0:
        raise FilterError("$top must be >= 1 and $skip >= 0")
    page = items[skip : skip + top]
    if skip + top >= len(items):
        return page, None
    following = {**query, "$skip": str(skip + top)}
    if "$top" in query:
        following["$top"] = str(top)
    return page, f"{base_url}{path}?{urlencode(following, safe=_SAFE)}"

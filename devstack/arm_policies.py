"""Policy documents for the ARM stand-in, at global, product, API and operation scope.

APIM keeps a policy document as text. ``rawxml`` is that text as written: policy expressions
(``@(...)``, ``@{...}``) hold C# as is, ``=>`` and ``<`` included. ``xml`` is the same document
as well-formed XML: inside expressions ``&``, ``<``, ``>`` and ``"`` are entity-escaped (``=>``
reads ``=&gt;``). The stand-in stores the raw text: a ``rawxml`` PUT verbatim, an ``xml`` PUT with
its expressions unescaped; a GET returns the format its ``format`` query asks for (the SDK sends
``xml`` unless told otherwise), and a list (which takes no ``format``) returns ``xml``. A
document that is not well-formed (after escaping its expressions), or whose root is not
``<policies>``, is an ARM 400, as APIM validates a policy before it stores it.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from typing import Any

from devstack.arm_entities import (
    Call,
    arm_error,
    body_properties,
    entity_json,
    not_found,
    precondition,
    store_entity,
    with_etag,
)
from devstack.server import Response, json_response

__all__ = [
    "escape_expressions",
    "get_policy",
    "list_policies",
    "put_policy",
    "unescape_expressions",
]

_FORMATS = ("xml", "rawxml")
_CLOSE = {"(": ")", "{": "}"}
_NEXT = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|@[({]", re.DOTALL)
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def _expression_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each policy expression's body (inside ``@(``…``)`` / ``@{``…``}``),
    brackets balanced, C# string and character literals skipped; an unclosed one runs to the
    end. XML comments and CDATA sections hold no expressions."""
    spans: list[tuple[int, int]] = []
    i = 0
    while (found := _NEXT.search(text, i)) is not None:
        if not found[0].startswith("@"):
            i = found.end()
            continue
        opener = found[0][1]
        depth, j, quote = 1, found.end(), ""
        while j < len(text) and depth:
            char = text[j]
            if quote:
                if char == "\\":
                    j += 1
                elif char == quote:
                    quote = ""
            elif char in "\"'":
                quote = char
            elif char == opener:
                depth += 1
            elif char == _CLOSE[opener]:
                depth -= 1
            j += 1
        end = j - 1 if depth == 0 else len(text)
        spans.append((found.end(), end))
        i = end + 1
    return spans


def _rewrite(text: str, edit: Any) -> str:
    out, last = [], 0
    for start, end in _expression_spans(text):
        out += [text[last:start], edit(text[start:end])]
        last = end
    out.append(text[last:])
    return "".join(out)


def escape_expressions(raw: str) -> str:
    """The ``xml`` form of a ``rawxml`` document: its expressions entity-escaped."""
    return _rewrite(raw, lambda body: "".join(_ESCAPES.get(c, c) for c in body))


def unescape_expressions(value: str) -> str:
    """The ``rawxml`` form of an ``xml`` document: its expressions' entities resolved."""
    return _rewrite(value, html.unescape)


def well_formed(raw: str) -> bool:
    """Whether ``raw`` (``rawxml``) is a well-formed ``<policies>`` document once its
    expressions are escaped."""
    try:
        root = ET.fromstring(escape_expressions(raw))
    except ET.ParseError:
        return False
    return root.tag == "policies"


def put_policy(call: Call) -> Response:
    """PUT a policy document (``xml`` or ``rawxml``; ``If-Match`` optional): 201 or 200."""
    app, request, service, store, key, route = call.unpack()
    props = body_properties(request)
    if isinstance(props, Response):
        return props
    fmt = props.get("format") or "xml"
    value = props.get("value")
    if not isinstance(value, str) or fmt not in _FORMATS:
        return arm_error(
            400, "ValidationError", "A policy needs a string 'value' and format xml or rawxml."
        )
    raw = value if fmt == "rawxml" else unescape_expressions(value)
    if not well_formed(raw):
        return arm_error(
            400, "ValidationError", "The policy document is not well-formed <policies> XML."
        )
    with app.state.lock:
        failed = precondition(request, store.get(key), required=False)
        if failed is not None:
            return failed
        entity, status = store_entity(
            app, store, key, "policy", {"value": raw, "format": "rawxml"}
        )
        payload = entity_json(app, service, entity, route)
        payload["properties"] = {"value": value, "format": fmt}
        return with_etag(status, payload, entity)


def _rendered(payload: dict[str, Any], fmt: str) -> dict[str, Any]:
    raw = str(payload["properties"].get("value") or "")
    value = raw if fmt == "rawxml" else escape_expressions(raw)
    return {**payload, "properties": {"value": value, "format": fmt}}


def get_policy(call: Call) -> Response:
    """GET a policy document with its ETag, in the ``format`` asked for (default ``xml``)."""
    app, request, service, store, key, route = call.unpack()
    fmt = request.query.get("format") or "xml"
    if fmt not in _FORMATS:
        return arm_error(400, "ValidationError", "format must be xml or rawxml.")
    with app.state.lock:
        entity = store.get(key)
        if entity is None:
            return not_found(route)
        return with_etag(200, _rendered(entity_json(app, service, entity, route), fmt), entity)


def list_policies(call: Call) -> Response:
    """GET a scope's policy collection: its one document (``xml``), or none."""
    app, _, service, store, key, route = call.unpack()
    with app.state.lock:
        entity = store.get(key)
        items = [] if entity is None else [entity_json(app, service, entity, route)]
        value = [_rendered(item, "xml") for item in items]
    return json_response(200, {"value": value, "count": len(value), "nextLink": None})

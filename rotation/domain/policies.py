"""Inbound mTLS: the thumbprint identities of ``validate-client-certificate``, edited byte for byte.

API Management checks a caller's certificate with the ``validate-client-certificate`` policy::

    <validate-client-certificate validate-revocation="true">
        <identities>
            <identity thumbprint="..." />
        </identities>
    </validate-client-certificate>

The inbound rotation (``docs/architecture.md``, "Package layout") adds a renewed certificate's
thumbprint next to the one it replaces and, after the overlap, removes the old one. Everything
else in the policy document must survive untouched, byte for byte. This module holds those edits;
it is pure (text in, text out).

Why expat, and why splicing
---------------------------
``xml.etree``/``minidom`` re-serialise: quoting, attribute order and spacing, entity escapes,
comments, CDATA and CRLF line endings all change, so they cannot give a minimal edit. A regular
expression over the text is not a parser: it finds ``<identity>`` elements inside comments,
CDATA and expressions, and misses them where the layout differs. ``xml.parsers.expat`` is a real,
strict XML tokenizer that reports where each element starts (``CurrentByteIndex``). So the document
is parsed only to *locate* the elements; the edit splices the original text at those offsets and
every other byte is copied through.

APIM's ``rawxml`` format is not quite XML: policy expressions (``@(...)`` and ``@{...}``) are C#
and may hold ``<``, ``>``, ``&`` and even the attribute's own quote character unescaped. Before
parsing, each expression is therefore *masked*: its bytes are replaced by ``x`` (line breaks kept),
which leaves the length, and so every offset, unchanged. The expression's end is found by
matching its brackets while skipping C# string and character literals (regular, verbatim
``@"..."``) and comments. Comments and CDATA sections of the XML are not masked (what they hold is
no expression). Known limit: a quote inside an interpolation hole of an interpolated string
(``$"{d["k"]}"``) ends the string early; APIM policies rarely contain one, and the parse then
fails loudly rather than editing the wrong place. Plain text that happens to contain ``@(`` is masked
like an expression, which is harmless unless its brackets never close.

Conventions
-----------
* Thumbprints are SHA-1 fingerprints: 40 hexadecimal digits, compared case-insensitively (APIM
  accepts either case). Returned values are upper case.
* An identity whose ``thumbprint`` is not 40 hex digits (an expression, say) is not a thumbprint
  identity: it is never matched, but it counts as an identity of its block.
* Offsets are character offsets into the ``str`` document; lines and columns count from 1.
* DTDs are refused: a policy document has none, and entity declarations are a parser hazard.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass

from rotation.domain.errors import RotationError

__all__ = [
    "LastIdentityError",
    "PinnedThumbprint",
    "PolicyDocumentError",
    "add_thumbprint",
    "find_thumbprints",
    "normalize_thumbprint",
    "remove_thumbprint",
]

_BLOCK = "validate-client-certificate"
_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")
_WHITESPACE = b" \t\r\n"
_X, _LF, _CR = 0x78, 0x0A, 0x0D
# A start tag in the masked text (expat has already accepted it, so this cannot misread it).
_START_TAG = re.compile(rb"<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*/?>")
_THUMBPRINT_ATTR = re.compile(rb"(\s+)thumbprint(\s*=\s*)([\"'])([^\"']*)\3")


class PolicyDocumentError(RotationError, ValueError):
    """A policy document that cannot be read: malformed XML, an unterminated expression, a DTD.

    ``line``, ``column`` (from 1) and ``offset`` (characters from the start) say where.
    Not retryable: the same document fails the same way.
    """

    def __init__(self, message: str, *, line: int, column: int, offset: int) -> None:
        super().__init__(f"policy document: {message} at line {line}, column {column}")
        self.reason = message
        self.line = line
        self.column = column
        self.offset = offset


class LastIdentityError(RotationError, ValueError):
    """``remove_thumbprint`` would leave a ``validate-client-certificate`` block without identities.

    An empty ``<identities>`` accepts every certificate that passes the other checks, so it is
    never produced. ``line``/``column``/``offset`` locate the block. Not retryable.
    """

    def __init__(self, thumbprint: str, *, line: int, column: int, offset: int) -> None:
        super().__init__(
            f"thumbprint {thumbprint} is the last identity of the {_BLOCK} block at line {line}, "
            f"column {column}; refusing to remove it"
        )
        self.thumbprint = thumbprint
        self.line = line
        self.column = column
        self.offset = offset


@dataclass(frozen=True, slots=True)
class PinnedThumbprint:
    """One ``<identity thumbprint="..."/>`` of a ``validate-client-certificate`` block.

    ``thumbprint`` is upper case; ``offset``/``line``/``column`` locate the identity's ``<``;
    ``block_offset`` locates its block's ``<validate-client-certificate`` (identities with the same
    ``block_offset`` belong to one block).
    """

    thumbprint: str
    offset: int
    line: int
    column: int
    block_offset: int


def normalize_thumbprint(value: str) -> str:
    """``value`` as an upper-case SHA-1 thumbprint; ``ValueError`` naming it unless 40 hex digits."""
    if not isinstance(value, str) or not _THUMBPRINT.fullmatch(value):
        raise ValueError(f"not a thumbprint (40 hexadecimal digits): {value!r}")
    return value.upper()


def find_thumbprints(document: str) -> tuple[PinnedThumbprint, ...]:
    """Every thumbprint identity of every ``validate-client-certificate`` block, in document order."""
    parsed = _parse(document)
    return tuple(
        PinnedThumbprint(
            thumbprint=ident.thumbprint,
            offset=parsed.chars(ident.start),
            line=parsed.line(ident.start),
            column=parsed.column(ident.start),
            block_offset=parsed.chars(block.start),
        )
        for block in parsed.blocks
        for ident in block.identities
        if ident.thumbprint is not None
    )


def add_thumbprint(document: str, anchor_thumbprint: str, new_thumbprint: str) -> str:
    """Pin ``new_thumbprint`` next to ``anchor_thumbprint`` in every block that pins the anchor.

    The new ``<identity thumbprint="NEW" />`` goes right after the block's first identity pinning
    the anchor, laid out like it: the same whitespace before it (its own line, same indentation,
    same line ending), the same spacing and quote character around the attribute, the same closing
    (``/>``, `` />`` or ``></identity>``) and the same letter case as the anchor's thumbprint. It
    carries the thumbprint only (the anchor's other attributes, such as its serial number, describe
    the old certificate). A block that already pins ``new_thumbprint`` is left alone, so adding
    twice changes nothing the second time. No block pinning the anchor: the document is returned
    as it is.
    """
    anchor = normalize_thumbprint(anchor_thumbprint)
    new = normalize_thumbprint(new_thumbprint)
    parsed = _parse(document)
    data = parsed.data
    inserts: list[tuple[int, bytes]] = []
    for block in parsed.blocks:
        pinned = [i for i in block.identities if i.thumbprint is not None]
        if any(i.thumbprint == new for i in pinned):
            continue
        found = next((i for i in pinned if i.thumbprint == anchor), None)
        if found is None:
            continue
        inserts.append(
            (found.end, _leading(data, found.start) + _identity_like(parsed, found, new))
        )
    if not inserts:
        return document
    out = bytearray()
    last = 0
    for at, text in inserts:
        out += data[last:at] + text
        last = at
    out += data[last:]
    return out.decode("utf-8")


def remove_thumbprint(document: str, thumbprint: str) -> str:
    """Remove every identity pinning ``thumbprint``, each with the whitespace that leads it.

    An identity on its own line goes with that line (its line break and indentation); inline, the
    whitespace run before it goes with it. This is exactly what ``add_thumbprint`` inserted, so
    removing what was added restores the document. Raises ``LastIdentityError`` (and changes
    nothing) when a block would be left without any identity. Not pinned anywhere: the document
    is returned as it is.
    """
    target = normalize_thumbprint(thumbprint)
    parsed = _parse(document)
    data = parsed.data
    cuts: list[tuple[int, int]] = []
    for block in parsed.blocks:
        doomed = [i for i in block.identities if i.thumbprint == target]
        if not doomed:
            continue
        if len(doomed) == len(block.identities):
            raise LastIdentityError(
                target,
                line=parsed.line(block.start),
                column=parsed.column(block.start),
                offset=parsed.chars(block.start),
            )
        cuts.extend((i.start - len(_leading(data, i.start)), i.end) for i in doomed)
    if not cuts:
        return document
    out = bytearray()
    last = 0
    for start, end in cuts:
        out += data[last:start]
        last = end
    out += data[last:]
    return out.decode("utf-8")


# -- locating -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Identity:
    start: int  # byte offset of "<identity"
    end: int  # byte offset just after the element ("/>" or "</identity>")
    thumbprint: str | None  # upper case; None when absent or not 40 hex digits


@dataclass(slots=True)
class _Block:
    start: int
    identities: list[_Identity]


@dataclass(frozen=True, slots=True)
class _Parsed:
    data: bytes  # the document, UTF-8
    masked: bytes  # the same with its policy expressions masked
    blocks: tuple[_Block, ...]

    def chars(self, at: int) -> int:
        return len(self.data[:at].decode("utf-8"))

    def line(self, at: int) -> int:
        return self.data.count(b"\n", 0, at) + 1

    def column(self, at: int) -> int:
        return len(self.data[self.data.rfind(b"\n", 0, at) + 1 : at].decode("utf-8")) + 1


def _parse(document: str) -> _Parsed:
    if not isinstance(document, str):
        raise TypeError(f"a policy document is text, not {type(document).__name__}")
    data = document.encode("utf-8")
    masked = _mask(data)
    parser = xml.parsers.expat.ParserCreate(encoding="utf-8")
    # One entry per open element: its name and, for an identity with an end tag, the identity.
    stack: list[tuple[str, _Identity | None]] = []
    blocks: list[_Block] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        at = parser.CurrentByteIndex
        parent = [entry[0] for entry in stack[-2:]]
        open_identity = None
        if name == _BLOCK:
            blocks.append(_Block(at, []))
        elif name == "identity" and parent == [_BLOCK, "identities"]:
            ident, closed = _identity_at(masked, at, attrs)
            blocks[-1].identities.append(ident)
            open_identity = None if closed else ident
        stack.append((name, open_identity))

    def end(_name: str) -> None:
        _, ident = stack.pop()
        if ident is not None:  # the end tag "</identity>" starts here
            ident.end = masked.index(b">", parser.CurrentByteIndex) + 1

    def doctype(*_: object) -> None:
        raise _error(data, "a DTD is not allowed", parser.CurrentByteIndex)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(masked, True)
    except xml.parsers.expat.ExpatError as exc:
        reason = xml.parsers.expat.errors.messages[exc.code] if exc.code else str(exc)
        raise _error(data, f"malformed XML ({reason})", parser.ErrorByteIndex) from None
    return _Parsed(data, masked, tuple(blocks))


def _identity_at(masked: bytes, at: int, attrs: dict[str, str]) -> tuple[_Identity, bool]:
    """The identity whose start tag is at ``at``, and whether that tag closes it (``/>``)."""
    tag = _START_TAG.match(masked, at)
    if tag is None:  # pragma: no cover - expat accepted this start tag
        raise _error(masked, "unreadable identity start tag", at)
    value = attrs.get("thumbprint", "").strip()
    thumbprint = value.upper() if _THUMBPRINT.fullmatch(value) else None
    return _Identity(at, tag.end(), thumbprint), masked[tag.end() - 2 : tag.end()] == b"/>"


def _error(data: bytes, message: str, at: int) -> PolicyDocumentError:
    probe = _Parsed(data, data, ())
    return PolicyDocumentError(
        message, line=probe.line(at), column=probe.column(at), offset=probe.chars(at)
    )


# -- masking policy expressions -------------------------------------------------------------------


def _mask(data: bytes) -> bytes:
    """``data`` with every ``@(...)``/``@{...}`` expression's bytes replaced by ``x`` (line breaks
    kept), outside XML comments, CDATA sections and processing instructions."""
    out = bytearray(data)
    i, n = 0, len(data)
    while i < n:
        for opener, closer in ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>")):
            if data.startswith(opener, i):
                j = data.find(closer, i + len(opener))
                i = n if j < 0 else j + len(closer)  # unterminated: expat names it
                break
        else:
            if data[i] == ord("@") and data[i + 1 : i + 2] in (b"(", b"{"):
                j = _expression_end(data, i)
                for k in range(i, j):
                    if out[k] not in (_LF, _CR):
                        out[k] = _X
                i = j
            else:
                i += 1
    return bytes(out)


def _expression_end(data: bytes, at: int) -> int:
    """The offset just after the expression starting with ``@(`` or ``@{`` at ``at``."""
    opener = data[at + 1]
    closer = ord(")") if opener == ord("(") else ord("}")
    depth = 0
    i, n = at + 1, len(data)
    while i < n:
        c = data[i]
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == ord('"'):
            verbatim = data[i - 1] == ord("@") or data[i - 2 : i] in (b"@$", b"$@")
            i = _literal_end(data, i, ord('"'), verbatim=verbatim)
            continue
        elif c == ord("'"):
            i = _literal_end(data, i, c, verbatim=False)
            continue
        elif data.startswith(b"//", i):
            j = data.find(b"\n", i)
            i = n if j < 0 else j
            continue
        elif data.startswith(b"/*", i):
            j = data.find(b"*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        i += 1
    raise _error(data, "unterminated policy expression", at)


def _literal_end(data: bytes, at: int, quote: int, *, verbatim: bool) -> int:
    """The offset just after the C# literal opened by ``quote`` at ``at`` (``len`` if none)."""
    i, n = at + 1, len(data)
    while i < n:
        c = data[i]
        if not verbatim and c == ord("\\"):
            i += 2
            continue
        if c == quote:
            if verbatim and data[i + 1 : i + 2] == bytes((quote,)):
                i += 2
                continue
            return i + 1
        i += 1
    return n


# -- layout ---------------------------------------------------------------------------------------


def _leading(data: bytes, at: int) -> bytes:
    """The whitespace that leads the element at ``at``: from the last line break (``\\r\\n`` or
    ``\\n``) of the whitespace run before it, or the whole run when it holds no line break."""
    start = at
    while start > 0 and data[start - 1] in _WHITESPACE:
        start -= 1
    run = data[start:at]
    lf = run.rfind(b"\n")
    if lf < 0:
        return run
    if lf > 0 and run[lf - 1] == _CR:
        lf -= 1
    return run[lf:]


def _identity_like(parsed: _Parsed, anchor: _Identity, thumbprint: str) -> bytes:
    """An identity pinning ``thumbprint`` laid out like ``anchor``'s element."""
    element = parsed.masked[anchor.start : anchor.end]
    attr = _THUMBPRINT_ATTR.search(element)
    if attr is None:  # pragma: no cover - the anchor has a literal thumbprint attribute
        raise ValueError("the anchor identity has no thumbprint attribute")
    before, equals, quote, value = (g.decode("utf-8") for g in attr.groups())
    if value.strip() == value.strip().lower():
        thumbprint = thumbprint.lower()
    if element.endswith(b"/>"):
        body = element[:-2]
        closing = body[len(body.rstrip(_WHITESPACE)) :].decode("utf-8") + "/>"
    else:
        closing = "></identity>"
    text = f"<identity{before}thumbprint{equals}{quote}{thumbprint}{quote}{closing}"
    return text.encode("utf-8")

"""The audit trail's hash chain, as pure functions: canonical encoding, link hash, verification.

Every chained audit record carries ``seq`` (1, 2, ... per chain: one chain per certificate),
``prev_hash`` (the previous record's ``hash``; ``GENESIS`` for ``seq`` 1) and ``hash``, the
SHA-256 (hex) of ``canonical(record, fields, seq=..., prev_hash=...)``. The canonical encoding
is compact JSON with sorted keys, UTF-8, over the record's audit fields (the caller passes them:
``rotation.adapters.tables.CHAINED_FIELDS``: the audit fields and ``recorded_at``) whose value is not ``None``, plus
``seq`` and ``prev_hash``. Leaving ``None`` out means a field added to the audit record later
does not change the hash of records written before it existed; clearing a field that had a
value still changes the hash.

``ChainVerifier`` checks one chain record by record in chain order (constant memory: it keeps
the previous link only) and names every break with its position. Records without a link
(written before the chain existed) are counted as unchained, not errors, while they precede
the first chained record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "GENESIS",
    "Break",
    "BreakKind",
    "ChainVerifier",
    "Link",
    "canonical",
    "link_hash",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of a chain's first record (``seq`` 1): sixty-four zeros."""


class BreakKind(StrEnum):
    """What a chain break looks like."""

    MODIFIED = "modified"
    """The record's content no longer hashes to its ``hash`` (or the next record's
    ``prev_hash`` no longer names it)."""
    MISSING = "missing"
    """``seq`` jumps forward: records were deleted."""
    REORDERED = "reordered"
    """``seq`` repeats or goes back, or a record without a link follows chained records:
    records were inserted or moved."""
    HEAD = "head"
    """The chain head disagrees with the last record (the tail was deleted, or the head was
    rewritten), or is missing."""
    ANCHOR = "anchor"
    """A record's hash differs from the one anchored for its ``seq`` outside the table, or an
    anchored ``seq`` is no longer in the chain (the chain was rewritten or cut)."""


@dataclass(frozen=True, slots=True)
class Link:
    """A record's (or the head's) place in its chain."""

    seq: int
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Break:
    """One chain break: its kind, where (the record's position, or the chain for the head),
    the ``seq`` concerned and what is wrong."""

    kind: BreakKind
    chain: str
    position: str
    seq: int | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        """The break as JSON-ready values."""
        return {
            "kind": str(self.kind),
            "chain": self.chain,
            "position": self.position,
            "seq": self.seq,
            "detail": self.detail,
        }


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical(
    record: Mapping[str, object], fields: Sequence[str], *, seq: int, prev_hash: str
) -> bytes:
    """The bytes a record's ``hash`` covers: compact, key-sorted JSON (UTF-8) of ``fields``
    present in ``record`` and not ``None`` (datetimes as ISO 8601 UTC with ``Z``), plus
    ``seq`` and ``prev_hash``.

    Raises:
        ValueError: ``seq`` is below 1, a field is named ``seq``/``prev_hash``, or a value is not
            JSON-encodable.
    """
    if seq < 1:
        raise ValueError(f"a chain's seq starts at 1, got {seq}")
    body = {name: _plain(record[name]) for name in fields if record.get(name) is not None}
    if "seq" in body or "prev_hash" in body:
        raise ValueError("the audit fields must not include seq or prev_hash")
    body["seq"] = seq
    body["prev_hash"] = prev_hash
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError as exc:
        raise ValueError(f"an audit field is not JSON-encodable: {exc}") from None
    return text.encode("utf-8")


def link_hash(
    record: Mapping[str, object], fields: Sequence[str], *, seq: int, prev_hash: str
) -> str:
    """SHA-256 (lowercase hex) of ``canonical(record, fields, seq=seq, prev_hash=prev_hash)``."""
    return hashlib.sha256(canonical(record, fields, seq=seq, prev_hash=prev_hash)).hexdigest()


@dataclass(slots=True)
class ChainVerifier:
    """Verifies one chain, fed its records in chain (storage) order, then its head.

    ``partial``: the chain is read from some point on (``--since``), so its first chained
    record is trusted as the start instead of having to be ``seq`` 1 after ``GENESIS``.
    """

    chain: str
    fields: Sequence[str]
    partial: bool = False
    anchors: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Anchored hashes by ``seq`` (``audit --verify --anchors``); each must be the record's."""
    records: int = 0
    unchained: int = 0
    breaks: int = 0
    _last: Link | None = field(default=None, repr=False)
    _last_position: str = field(default="", repr=False)

    def record(
        self, position: str, record: Mapping[str, object], link: Link | None
    ) -> list[Break]:
        """Check the next record; its breaks (empty when it continues the chain)."""
        self.records += 1
        if link is None:
            if self._last is None:
                self.unchained += 1
                return []
            return self._count(
                [self._break(BreakKind.REORDERED, position, None, "a record without a chain "
                             f"link follows seq {self._last.seq}")]
            )  # fmt: skip
        found: list[Break] = []
        try:
            expected = link_hash(record, self.fields, seq=link.seq, prev_hash=link.prev_hash)
        except ValueError as exc:
            expected = f"unencodable: {exc}"
        if expected != link.hash:
            found.append(
                self._break(BreakKind.MODIFIED, position, link.seq,
                            "the record's content does not match its hash")
            )  # fmt: skip
        found.extend(self._continuity(position, link))
        anchored = self.anchors.get(link.seq, frozenset())
        if anchored - {link.hash}:
            found.append(
                self._break(BreakKind.ANCHOR, position, link.seq,
                            f"{len(anchored - {link.hash})} anchor(s) name another hash for it")
            )  # fmt: skip
        self._last, self._last_position = link, position
        return self._count(found)

    def _continuity(self, position: str, link: Link) -> list[Break]:
        found = self._first(position, link) if self._last is None else self._next(position, link)
        return [] if found is None else [found]

    def _first(self, position: str, link: Link) -> Break | None:
        if self.partial:
            return None
        if link.seq != 1:
            return self._break(BreakKind.MISSING, position, link.seq,
                               f"records seq 1..{link.seq - 1} are missing before it")  # fmt: skip
        if link.prev_hash != GENESIS:
            return self._break(BreakKind.MODIFIED, position, 1,
                               "the first record does not start from the genesis value")  # fmt: skip
        return None

    def _next(self, position: str, link: Link) -> Break | None:
        last = self._last
        assert last is not None  # noqa: S101 - _continuity checked it
        if link.seq > last.seq + 1:
            gap = (
                f"{last.seq + 1}"
                if link.seq == last.seq + 2
                else f"{last.seq + 1}..{link.seq - 1}"
            )
            return self._break(BreakKind.MISSING, position, link.seq,
                               f"records seq {gap} are missing before it")  # fmt: skip
        if link.seq <= last.seq:
            return self._break(BreakKind.REORDERED, position, link.seq,
                               f"seq {link.seq} follows seq {last.seq}")  # fmt: skip
        if link.prev_hash != last.hash:
            return self._break(BreakKind.MODIFIED, self._last_position, last.seq,
                               f"the next record (seq {link.seq}) names a different hash for it")  # fmt: skip
        return None

    def finish(self, head: Link | None) -> list[Break]:
        """Check the chain head against the last record (and the anchors beyond it); the
        head's breaks."""
        last = self._last
        beyond = [seq for seq in self.anchors if last is None or seq > last.seq]
        cut = (
            [self._break(BreakKind.ANCHOR, "head", max(beyond),
                         f"seq {max(beyond)} was anchored but the chain ends before it")]
            if beyond and not (self.partial and last is None)
            else []
        )  # fmt: skip
        return self._count(cut) + self._finish_head(head)

    def _finish_head(self, head: Link | None) -> list[Break]:
        last = self._last
        if head is None:
            if last is None:
                return []
            return self._count(
                [self._break(BreakKind.HEAD, "head", None, "chained records but no chain head")]
            )
        if last is None:
            if self.partial:
                return []
            return self._count(
                [self._break(BreakKind.HEAD, "head", head.seq,
                             f"the head names seq {head.seq} but no chained record is stored")]
            )  # fmt: skip
        if head.seq != last.seq or head.hash != last.hash:
            detail = (
                f"the head names seq {head.seq} but the last record is seq {last.seq}"
                if head.seq != last.seq
                else f"the head's hash differs from the last record's (seq {last.seq})"
            )
            return self._count([self._break(BreakKind.HEAD, "head", head.seq, detail)])
        return []

    def _break(self, kind: BreakKind, position: str, seq: int | None, detail: str) -> Break:
        return Break(kind=kind, chain=self.chain, position=position, seq=seq, detail=detail)

    def _count(self, found: list[Break]) -> list[Break]:
        self.breaks += len(found)
        return found

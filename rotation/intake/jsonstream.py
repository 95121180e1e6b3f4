"""Stream JSON values out of a text file in constant memory (``json.JSONDecoder.raw_decode``).

Used by event replay (``rotation.intake.events.iter_file_events``) and the audit reader. Handles a
top-level JSON array (each element is one value), a single value, and JSON Lines or concatenated
values. A syntax error is yielded in place of the value as ``InvalidEventError``: in JSON Lines
the rest of that line is skipped and reading goes on; in an array the element boundaries are lost,
so the array ends there. Each value is capped at ``max_value_chars``.

Numbers of any size decode: an integer longer than Python's int/str conversion limit (4,300
digits) becomes ``float`` (``inf``/``-inf``) instead of raising ``ValueError`` mid-value, so the
value's boundaries stay known (``loads`` applies the same rule to a whole document).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from rotation.domain.errors import InvalidEventError

__all__ = ["JsonStream", "loads"]

_CHUNK = 64 * 1024
_MAX_INT_DIGITS = 4300  # sys.int_info.default_max_str_digits


def _parse_int(text: str) -> int | float:
    """A JSON integer; beyond the int conversion limit, the float it rounds to (+-inf)."""
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return float(text)
    return int(text)


def _decoder() -> json.JSONDecoder:
    return json.JSONDecoder(parse_int=_parse_int)


def loads(text: str) -> object:
    """``json.loads`` with numbers of any size (see the module doc).

    Raises:
        json.JSONDecodeError: not JSON. RecursionError: nested too deeply.
    """
    return _decoder().decode(text)


class JsonStream:
    """Incremental ``raw_decode`` over a buffered text stream: arrays, objects or JSON Lines."""

    def __init__(self, stream: TextIO, name: str, *, max_value_chars: int = 1024 * 1024) -> None:
        self._stream, self._name, self._max = stream, name, max_value_chars
        self._buf, self._pos, self._eof = "", 0, False

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._stream.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _peek(self) -> str:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf) or not self._fill():
                return self._buf[self._pos : self._pos + 1]

    def _value(self) -> object:
        decoder = _decoder()
        self._peek()  # raw_decode does not skip leading whitespace
        while True:
            try:
                value, end = decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._broken(exc) or self._too_big() or not self._fill():
                    raise InvalidEventError(self._why(exc)) from None
                continue
            except RecursionError:
                raise InvalidEventError("value is nested too deeply") from None
            except ValueError:  # any other decoding failure: the value cannot be read
                raise InvalidEventError("invalid JSON (a value cannot be decoded)") from None
            if self._complete(end) or not self._fill():
                start, self._pos = self._pos, end
                if end - start > self._max:
                    # Boundaries are known, so the stream goes on after an oversized value.
                    return InvalidEventError(f"value is larger than {self._max} characters")
                return value

    def _complete(self, end: int) -> bool:
        # A number cut at the end of the buffer ("0" of "0.5") decodes but is not finished.
        rest = self._buf[end : end + 32]
        return self._eof or rest.strip("0123456789.eE+-") != ""

    def _broken(self, exc: json.JSONDecodeError) -> bool:
        # An error well before the end of the buffer cannot be cured by reading more (the slack
        # covers literals such as ``false`` cut at a chunk boundary).
        return exc.pos < len(self._buf) - 16 and not exc.msg.startswith("Unterminated")

    def _too_big(self) -> bool:
        return len(self._buf) - self._pos > self._max

    def _why(self, exc: json.JSONDecodeError) -> str:
        if self._too_big():
            return f"value is larger than {self._max} characters"
        return f"invalid JSON ({exc.msg})"

    def _skip_line(self) -> None:
        while "\n" not in self._buf[self._pos :] and self._fill():
            self._pos = max(self._pos, len(self._buf) - _CHUNK)
        newline = self._buf.find("\n", self._pos)
        self._pos = len(self._buf) if newline < 0 else newline + 1

    def __iter__(self) -> Iterator[tuple[str, object]]:
        if self._peek() == "[":
            self._pos += 1
            yield from self._array()
            return
        index = 0
        while self._peek():
            try:
                value = self._value()
            except InvalidEventError as exc:
                self._skip_line()
                value = exc
            yield f"{self._name}[{index}]", value
            index += 1

    def _array(self) -> Iterator[tuple[str, object]]:
        index = 0
        if self._peek() == "]":
            return
        while True:
            location = f"{self._name}[{index}]"
            try:
                yield location, self._value()
            except InvalidEventError as exc:
                yield location, exc
                return
            index += 1
            separator = self._peek()
            self._pos += 1
            if separator == "]":
                return
            if separator != ",":
                yield (
                    f"{self._name}[{index}]",
                    InvalidEventError("expected ',' or ']' in the array"),
                )
                return

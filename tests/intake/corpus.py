"""A hostile corpus of Event Grid deliveries, generated deterministically (issue 10).

``corpus()`` returns ``(label, body)`` pairs: whole delivery bodies (bytes) built from valid
events of both schemas by hostile changes: numbers (digit-likes ``int()`` refuses, 5,000-digit
integers, NaN/Infinity, floats), times at the calendar's edges with offsets, Unicode
confusables and case-folding characters in names, versions, vault names and hosts, URL tricks
(userinfo, ports, percent-encoding, backslashes, IPv6, trailing dots), structure (nesting,
duplicate keys, NUL, lone surrogates, wrong types, rich markup and terminal escapes in the
fields of an ignored event) and raw bytes (non-UTF-8, BOMs, truncation).
Run ``python -m tests.intake.corpus DIR`` to write it out as files (one body per file).
"""

from __future__ import annotations

import copy
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.payloads import DATA, TOPIC

SEED = 10
HUGE = "9" * 5000
EG: dict[str, Any] = {
    "id": "eg-1", "topic": TOPIC, "subject": "partner-mtls",
    "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
    "eventTime": "2026-03-02T08:15:42.1234567Z", "data": DATA, "dataVersion": "1",
    "metadataVersion": "1",
}  # fmt: skip
CE: dict[str, Any] = {
    "id": "ce-1", "source": TOPIC, "specversion": "1.0",
    "type": "Microsoft.KeyVault.CertificateNewVersionCreated",
    "time": "2026-03-02T08:15:42.1234567Z", "data": DATA,
}  # fmt: skip
RAW_NUMBERS = [HUGE, "-" + HUGE, "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1.5",
               "-0", "0.0000001", "1" + "0" * 4300, "123456789012345678901234567890"]  # fmt: skip
NUMBER_VALUES: list[Any] = ["²", "٣", "①", "1²", " 12 ", "0x10", "1_000", "1e5", "", "-1",
                            True, False, None, [], {}, "1" * 20, 2**64, -(2**63), 1.5e308]  # fmt: skip
EDGE_TIMES = [
    "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
    "2026-03-02T24:00:00Z", "2026-02-30T00:00:00Z", "2026-03-02T23:59:60Z",
    "2026-03-02T08:15:42.12345678901234567890Z", "2026-03-02T08:15:42", "2026-03-02T08:15:42+24:00",
    "２０２６-03-02T08:15:42Z", "2026-03-02T08:15:42.١٢٣Z", "2026-03-02", "", " ", "Z", "now",
    "0001-01-01T00:00:00.0000000+00:01", "9999-12-31T23:59:59.9999999-00:01",
]  # fmt: skip
CONFUSABLES = ["\u017f", "\u212a", "\u212b", "\u0131", "\u0130", "\u0430", "\u0435", "\u043e",
               "\u0440", "\u0441", "\u0455", "\uff4b", "\uff0d", "\u2010", "\u00df", "\u200b",
               "\u00ad", "\ufeff", "\u0000", "\u2160", "K", "S"]  # fmt: skip
URL_TRICKS = [
    "https://kv-rotation-demo.vault.azure.net.evil.example/certificates/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net./certificates/partner-mtls/{v}",
    "https://user:pw@kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net:443/certificates/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net:99999/certificates/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net/certificates/partner%2Dmtls/{v}",
    "https://kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{v}?x=1",
    "https://kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{v}#f",
    "https://kv-rotation-demo.vault.azure.net\\@evil.example/certificates/partner-mtls/{v}",
    "https://[::1]/certificates/partner-mtls/{v}",
    "https://[::1/certificates/partner-mtls/{v}",
    "HTTPS://KV-ROTATION-DEMO.VAULT.AZURE.NET/CERTIFICATES/PARTNER-MTLS/{v}",
    "https://kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{v}/extra",
    "https://kv-rotation-demo.vault.azure.net/certificates/../secrets/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net//certificates/partner-mtls/{v}",
    "https://xn--kv-rotation-demo-abc.vault.azure.net/certificates/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net\t/certificates/partner-mtls/{v}",
    "https://kv-rotation-demo.vault.azure.net\n/certificates/partner-mtls/{v}",
    "http://kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{v}",
    "//kv-rotation-demo.vault.azure.net/certificates/partner-mtls/{v}",
    "https:///certificates/partner-mtls/{v}",
]  # fmt: skip


def _dump(value: object) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(base)
    event.update(changes)
    return event


def _with_data(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(base)
    event["data"] = {**event["data"], **changes}
    return event


def _splice(rng: random.Random, text: str) -> str:
    char = rng.choice(CONFUSABLES)
    at = rng.randrange(len(text) + 1)
    return text[:at] + char + text[at + rng.randrange(2) :]


def _numbers(base: dict[str, Any], tag: str) -> Iterator[tuple[str, bytes]]:
    count_key = "deliveryattempts" if base is CE else "deliveryAttempts"
    for i, raw in enumerate(RAW_NUMBERS):
        for key in ("NBF", "EXP"):
            text = _dump(_with_data(base, **{key: 0})).replace(
                f'"{key}": 0'.encode(), f'"{key}": {raw}'.encode()
            )
            yield f"{tag}.number.raw.{key}.{i}", text
        text = _dump(_with(base, **{count_key: 0})).replace(
            f'"{count_key}": 0'.encode(), f'"{count_key}": {raw}'.encode()
        )
        yield f"{tag}.number.raw.{count_key}.{i}", text
    for i, value in enumerate(NUMBER_VALUES):
        yield f"{tag}.number.NBF.{i}", _dump(_with_data(base, NBF=value))
        yield f"{tag}.number.{count_key}.{i}", _dump(_with(base, **{count_key: value}))


def _times(base: dict[str, Any], tag: str) -> Iterator[tuple[str, bytes]]:
    key = "time" if base is CE else "eventTime"
    for i, when in enumerate(EDGE_TIMES):
        yield f"{tag}.time.{i}", _dump(_with(base, **{key: when}))
        other = _with(base, **{key: when})
        other["type" if base is CE else "eventType"] = "Microsoft.KeyVault.SecretNewVersionCreated"
        yield f"{tag}.time.ignored.{i}", _dump(other)


def _names(base: dict[str, Any], tag: str, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    url: str = DATA["Id"]
    version: str = DATA["Version"]
    head, _ = url.split("/certificates/")
    for i in range(24):
        name = _splice(rng, "partner-mtls")
        yield (
            f"{tag}.name.path.{i}",
            _dump(_with_data(base, Id=f"{head}/certificates/{name}/{version}")),
        )
        yield f"{tag}.name.field.{i}", _dump(_with_data(base, ObjectName=name))
        both = _with_data(base, ObjectName=name, Id=f"{head}/certificates/{name}/{version}")
        yield f"{tag}.name.both.{i}", _dump(both)
        host = _splice(rng, "kv-rotation-demo.vault.azure.net")
        yield (
            f"{tag}.host.{i}",
            _dump(_with_data(base, Id=f"https://{host}/certificates/partner-mtls/{version}")),
        )
        vault = _splice(rng, "kv-rotation-demo")
        yield f"{tag}.vaultname.{i}", _dump(_with_data(base, VaultName=vault))
        yield f"{tag}.vault.both.{i}", _dump(_with_data(
            base, VaultName=vault, Id=f"https://{vault}.vault.azure.net/certificates/partner-mtls/{version}"
        ))  # fmt: skip
        other = _splice(rng, version)
        yield (
            f"{tag}.version.{i}",
            _dump(_with_data(base, Version=other, Id=f"{head}/certificates/partner-mtls/{other}")),
        )
        topic = _splice(rng, TOPIC)
        yield (
            f"{tag}.topic.{i}",
            _dump(_with(base, **{"source" if base is CE else "topic": topic})),
        )
        event_type = _splice(rng, "Microsoft.KeyVault.CertificateNewVersionCreated")
        yield (
            f"{tag}.type.{i}",
            _dump(_with(base, **{"type" if base is CE else "eventType": event_type})),
        )
    for i, trick in enumerate(URL_TRICKS):
        yield f"{tag}.url.{i}", _dump(_with_data(base, Id=trick.format(v=version)))


def _structure(base: dict[str, Any], tag: str) -> Iterator[tuple[str, bytes]]:
    for depth in (64, 1000, 100_000):
        nested = "[" * depth + "1" + "]" * depth
        yield (
            f"{tag}.nest.data.{depth}",
            _dump(_with_data(base, NBF=0)).replace(b'"NBF": 0', b'"NBF": ' + nested.encode()),
        )
        yield f"{tag}.nest.top.{depth}", nested.encode()
        yield f"{tag}.nest.string.{depth}", _dump(_with(base, data=nested))
    yield f"{tag}.dup.conflict", _dump(_with(base, ID="other"))
    yield f"{tag}.dup.data", _dump(_with_data(base, id="https://evil.example/certificates/x/y"))
    yield f"{tag}.dup.nested", _dump(_with(base, ID=[[[[1]]]], id=[[[[2]]]]))
    yield f"{tag}.nul.key", _dump(_with(base, **{"id\u0000": "x"}))
    yield f"{tag}.nul.value", _dump(_with_data(base, ObjectName="partner-mtls\u0000"))
    yield f"{tag}.surrogate.id", _dump(_with(base, id="\ud800"))
    yield (
        f"{tag}.surrogate.type",
        _dump(_with(base, **{"type" if base is CE else "eventType": "\udfff"})),
    )
    yield f"{tag}.surrogate.key", _dump(_with(base, **{"\udc80": 1}))
    yield f"{tag}.surrogate.name", _dump(_with_data(base, ObjectName="partner\ud800mtls"))
    for i, data in enumerate(  # type: ignore[var-annotated]
        [None, [], "", "null", "[1]", 7, json.dumps(DATA), json.dumps(DATA)[:-1]]
    ):
        yield f"{tag}.data.{i}", _dump(_with(base, data=data))
    for i, key in enumerate(["id", "data", "topic", "eventType", "type", "specversion"]):
        event = copy.deepcopy(base)
        event.pop(key, None)
        yield f"{tag}.missing.{i}", _dump(event)
        yield f"{tag}.wrongtype.{i}", _dump(_with(base, **{key: [1]}))
    type_key = "type" if base is CE else "eventType"
    for i, text in enumerate(
        ["[/bold]", "[red]x[/red]", "Other\u001b[31mred", "\u0007\u0000\u009b"]
    ):
        other = _with(base, **{type_key: text})
        other["data"] = {"VaultName": text, "ObjectName": text, "ObjectType": "[/]"}
        yield f"{tag}.display.{i}", _dump(other)
    yield f"{tag}.too-many", _dump([base] * 5001)
    yield f"{tag}.array.mixed", _dump([base, 1, None, "x", [base]])


def _raw() -> Iterator[tuple[str, bytes]]:
    valid = _dump(EG)
    yield "raw.utf16", json.dumps(EG).encode("utf-16")
    yield (
        "raw.latin1",
        json.dumps(_with_data(EG, ObjectName="partner-mtl\u00e9")).encode("latin-1"),
    )
    yield "raw.bom", b"\xef\xbb\xbf" + valid
    yield "raw.invalid-utf8", valid.replace(b"partner-mtls", b"partner-\xff\xfe", 1)
    yield "raw.nul", b"\x00" + valid
    yield "raw.empty", b""
    yield "raw.space", b"   \n"
    for cut in (1, 10, 50, len(valid) // 2, len(valid) - 1):
        yield f"raw.truncated.{cut}", valid[:cut]
    yield "raw.two-values", valid + b" " + valid
    yield "raw.too-big", b"[" + b" " * (1024 * 1024) + b"]"


def corpus() -> list[tuple[str, bytes]]:
    """Every hostile body, with a label naming what is hostile about it (deterministic)."""
    rng = random.Random(SEED)
    out: list[tuple[str, bytes]] = []
    for base, tag in ((EG, "eg"), (CE, "ce")):
        out.extend(_numbers(base, tag))
        out.extend(_times(base, tag))
        out.extend(_names(base, tag, rng))
        out.extend(_structure(base, tag))
    out.extend(_raw())
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    target.mkdir(parents=True, exist_ok=True)
    for index, (label, body) in enumerate(corpus()):
        (target / f"{index:04d}-{label}.json").write_bytes(body)
    sys.stdout.write(f"{len(corpus())} payloads written to {target}\n")

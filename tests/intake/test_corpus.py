"""The hostile corpus (``tests/intake/corpus.py``, 808 generated payloads) through every intake
path: delivery bodies, the Functions trigger's objects, ``certrotate events --json`` and
``certrotate replay --json`` on one JSON Lines file with a valid event after each payload.

No payload may crash, hang, or be accepted in a way that breaks the name or host rules
(``tests/intake/checks.py``); every valid event around them must still be handled.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import azure.functions as func
import pytest
from click.testing import CliRunner

from rotation import bootstrap
from rotation.domain.errors import InvalidEventError
from rotation.entrypoints.cli import cli
from rotation.entrypoints.functions import on_key_vault_event
from rotation.entrypoints.invocation import from_function_event
from rotation.intake.jsonstream import loads
from tests.intake.bodies import parse_bytes
from tests.intake.checks import outcome
from tests.intake.conftest import VAULT, ApplyingService, ReplayEnv
from tests.intake.corpus import EG, corpus

CORPUS = corpus()
# Groups of name/host/vault/version changes: one passes only when what changed is ASCII.
MUST_REFUSE = ("name.path.", "name.both.", "host.", "vault.both.", "version.", "dup.data")


def test_the_corpus_is_a_few_hundred_distinct_payloads():
    assert len(CORPUS) >= 600
    assert len({label for label, _ in CORPUS}) == len(CORPUS)


def test_every_payload_is_parsed_or_refused_by_the_rules():
    """parse_bytes: events that keep the name/host rules, or an InvalidEventError."""
    results: Counter[str] = Counter()
    for label, body in CORPUS:
        result = outcome(lambda body=body: parse_bytes(body))  # type: ignore[misc]
        refused = isinstance(result, InvalidEventError)
        results["refused" if refused else "accepted"] += 1
        if not refused and any(group in label for group in MUST_REFUSE):
            data = json.loads(body)["data"]
            fields = [data[k] for k in ("Id", "VaultName", "ObjectName", "Version")]
            assert all(f.strip().isascii() for f in fields), label  # only ASCII changes pass
    assert results["refused"] > results["accepted"] > 0


def test_every_payload_through_the_trigger_objects():
    """The Functions trigger's path (func.EventGridEvent / func.CloudEvent) is total too."""
    for label, body in CORPUS:
        try:
            obj = loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if not isinstance(obj, dict):
            continue
        event = _function_event(obj)
        if event is not None:
            outcome(lambda event=event: [from_function_event(event)]), label  # type: ignore[misc]


def test_every_payload_through_the_functions_trigger_returns(monkeypatch, capsys):
    """The real trigger function: a malformed event is audited and returns (no 500, so no
    redelivery loop); nothing else escapes. Every audit line is one valid JSON object."""
    service = ApplyingService()
    monkeypatch.setattr(bootstrap, "get_handler", lambda: service)
    monkeypatch.setenv("ROTATION_VAULTS", VAULT)
    trigger = on_key_vault_event.build().get_user_function()
    delivered = 0
    for _, body in CORPUS:
        try:
            obj = loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        event = _function_event(obj) if isinstance(obj, dict) else None
        if event is not None:
            trigger(event)
            delivered += 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    malformed = [line for line in lines if line.get("event") == "event.malformed"]
    assert delivered >= 400
    assert len(malformed) + len(service.handled) == delivered


def _function_event(obj: dict[str, object]) -> func.EventGridEvent | func.CloudEvent | None:
    try:
        if "specversion" in obj:
            return func.CloudEvent(
                id=str(obj.get("id")), source=str(obj.get("source")), type=str(obj.get("type")),
                specversion="1.0", data=obj.get("data"),
                **{k: v for k, v in obj.items() if k.isascii() and k.startswith("delivery")},  # type: ignore[arg-type]
            )  # fmt: skip
        return func.EventGridEvent(
            id=str(obj.get("id")), data=obj.get("data"), topic=str(obj.get("topic")),  # type: ignore[arg-type]
            subject="", event_type=str(obj.get("eventType")), event_time=None, data_version="1",
        )  # fmt: skip
    except (TypeError, ValueError):  # the worker itself would refuse to build it
        return None


@pytest.fixture(name="poisoned", scope="module")
def _poisoned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One JSON Lines file: each single-line payload followed by a valid event ``ok-N``."""
    path = tmp_path_factory.mktemp("corpus") / "hostile.jsonl"
    count = 0
    with path.open("wb") as out:
        for _, body in CORPUS:
            if b"\n" in body or b"\r" in body:
                continue
            out.write(body + b"\n")
            out.write(json.dumps(EG | {"id": f"ok-{count}"}).encode() + b"\n")
            count += 1
    return path, count


def test_events_json_is_complete_and_keeps_every_valid_event(poisoned):
    """`certrotate events --json`: one complete JSON array, every ok-N in it, exit 1."""
    path, count = poisoned

    result = CliRunner().invoke(cli, ["events", "--json", "--vault", VAULT, str(path)])

    assert result.exit_code == 1, result.output[-2000:]
    ids = {e["event_id"] for e in json.loads(result.stdout)}
    assert {f"ok-{i}" for i in range(count)} <= ids
    assert count >= 600


def test_events_table_prints_every_row_without_markup_or_escapes(poisoned):
    """The table form: payload text is never rich markup ("[/bold]" crashed it) and no
    control character (an ESC sequence) reaches the terminal."""
    path, count = poisoned

    result = CliRunner().invoke(cli, ["events", "--vault", VAULT, str(path)])

    assert result.exit_code == 1, result.output[-2000:]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "\x1b" not in result.stdout
    assert "\x00" not in result.stdout
    assert "[/bold]" in result.stdout
    rows = sum(line.count("hostile.jsonl[") for line in result.stdout.splitlines())
    assert rows >= count  # every ok-N at least


def test_replay_json_lines_are_complete_and_every_valid_event_is_handled(
    poisoned, replay_env: ReplayEnv
):
    """`certrotate replay --json`: valid JSON Lines, every ok-N handled, malformed counted."""
    path, count = poisoned

    result = CliRunner(env=replay_env.env).invoke(cli, ["replay", "--json", str(path)])

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    handled = [e.event_id for e in replay_env.service.handled]
    assert result.exit_code == 1
    assert {f"ok-{i}" for i in range(count)} <= set(handled)
    assert sum(x["decision"] == "malformed" for x in lines) > 0
    assert len(lines) == len(handled) + sum(x["decision"] == "malformed" for x in lines)
    malformed = [record for record, _ in replay_env.sink.seen]
    assert all(r.event == "event.malformed" for r in malformed)
    assert len({r.correlation_id for r in malformed}) == len(malformed)  # fresh every time

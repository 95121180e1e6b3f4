"""``certrotate audit``'s verification: what makes a record fail (vocabulary, shape, secrets),
and what a JSON-lines file may hold besides records (broken lines, non-objects, bad times)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from rotation.entrypoints.cli import cli
from rotation.entrypoints.cli.audit import verify_record


def test_every_vocabulary_and_shape_problem_is_named():
    """Unknown decision and trigger, empty event, non-object target, bad kind and result."""
    record: dict[str, object] = {
        "event": "",
        "decision": "maybe",
        "trigger": "cron",
        "targets": [42, {"kind": "gateway", "result": "great"}],
    }

    problems = verify_record(record)

    assert {
        "decision is not one of the documented decisions",
        "trigger is not eventgrid, timer or cli",
        "event name is empty",
        "targets[0] is not an object",
        "targets[1].result is not a documented target result",
    } <= set(problems)
    assert any(p.startswith("targets[1].kind is not one of") for p in problems)


def test_targets_that_are_not_a_list_are_one_problem():
    """``targets`` holding an object: reported once, as a non-object target."""
    problems = verify_record({"targets": {"kind": "entity"}})

    assert "targets[0] is not an object" in problems


def test_files_report_broken_lines_and_skip_by_time(tmp_path: Path):
    """A broken line and a non-object are failures; records before --since or without a
    readable time are skipped; the exit code is 1."""
    path = tmp_path / "audit.jsonl"
    good = {"audit": True, "event": "rotation.applied", "decision": "applied"}
    path.write_text(
        "\n".join(
            [
                "{not json",
                "[1, 2]",
                json.dumps({**good, "recorded_at": "2026-01-01T00:00:00+00:00"}),
                json.dumps({**good, "recorded_at": "yesterday"}),
            ]
        )
        + "\n"
    )

    result = CliRunner().invoke(
        cli, ["audit", "--file", str(path), "--json", "--since", "2026-02-01"]
    )

    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert [line["location"] for line in lines] == ["audit.jsonl[0]", "audit.jsonl[1]"]
    assert lines[0]["problems"][0].startswith("not JSON")
    assert lines[1]["problems"] == ["not a JSON object"]

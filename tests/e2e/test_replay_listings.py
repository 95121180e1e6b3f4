"""End to end: a replay shares APIM listings, and decides exactly as one event at a time.

The same mixed replay (duplicates, a late event, a second certificate, a malformed line, an
untrusted version imported mid-replay, then a good one) runs through ``run_replay`` on two
identical devstack scenes: once handing each event to ``RotationService.handle`` (fresh APIM
listings per event, as the Functions trigger does with ``ROTATION_LISTING_CACHE_SECONDS=0``) and
once to ``RotationService.batch()`` (what ``certrotate replay`` uses). Every JSON line (decision, findings, targets, errors), the decision
counts (hence the exit code), the APIM writes and end state must be the same; the ARM list
requests are counted from the stand-in's request log.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.pki import to_pkcs12
from devstack.stack import Devstack
from rotation import bootstrap
from rotation.entrypoints.replay import Item, run_replay
from rotation.intake.events import iter_file_events
from rotation.ports import EventHandler
from rotation.testing import MemoryAuditSink
from tests.e2e.world import CERT, NEW_VERSION, E2ePki, World, event_data, topic

OTHER = "unrelated"


def scene(world: World) -> dict[str, str]:
    """The ``bound`` scene: v1 bound in both services (api-a, api-b in svc1; api-c in svc2),
    the unrelated certificate bound in svc1, v2 imported. Returns label -> version id."""
    v1 = world.add_version()
    for svc in (world.svc1, world.svc2):
        world.bind(svc, CERT, v1)
    world.add_backend(world.svc1, "api-a", CERT)
    world.add_backend(world.svc1, "api-b", CERT)
    world.add_backend(world.svc2, "api-c", CERT)
    other = world.add_version(OTHER)
    world.bind(world.svc1, OTHER, other, name=OTHER)
    world.add_backend(world.svc1, "api-other", OTHER)
    return {"v1": v1, "other": other, "v2": world.add_version()}


def write_events(
    path: Path, world: World, labels: dict[str, str], steps: list[tuple[str, str]]
) -> Path:
    """JSON Lines: one Event Grid event per (certificate, version label); ``!`` is a broken line."""
    lines = []
    for i, (name, label) in enumerate(steps):
        if name == "!":
            lines.append("{ this is not json")
            continue
        event = {
            "id": f"{path.stem}-{i}", "topic": topic(world.stack), "subject": name,
            "eventType": NEW_VERSION, "eventTime": "2026-03-01T12:00:00Z", "dataVersion": "1",
            "data": event_data(world.stack, name, labels[label]),
        }  # fmt: skip
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FIRST = [
    (CERT, "v2"), (CERT, "v2"), (CERT, "v1"), (OTHER, "other"), (CERT, "v2"), ("!", ""),
    (CERT, "v2"),
]  # fmt: skip
SECOND = [(CERT, "v3"), (CERT, "v3"), (CERT, "v2")]  # v3 chains to a root nobody trusts
THIRD = [(CERT, "v4"), (CERT, "v4"), (CERT, "v2")]
EXPECTED = [
    "applied", "already_current", "superseded", "already_current", "already_current",
    "malformed", "already_current", "rejected", "rejected", "rejected", "applied",
    "already_current", "superseded",
]  # fmt: skip


def items(world: World, labels: dict[str, str], tmp: Path) -> Iterator[Item]:
    """The replay's input, lazily: versions are imported into the vault between the files."""
    vaults = (world.stack.vault_url,)
    yield from iter_file_events(
        write_events(tmp / "first.jsonl", world, labels, FIRST), allowed_vault_urls=vaults
    )
    leaf, root = world.pki.stranger
    labels["v3"] = world.add_version(data=to_pkcs12(leaf, [root]))
    yield from iter_file_events(
        write_events(tmp / "second.jsonl", world, labels, SECOND), allowed_vault_urls=vaults
    )
    labels["v4"] = world.add_version()
    yield from iter_file_events(
        write_events(tmp / "third.jsonl", world, labels, THIRD), allowed_vault_urls=vaults
    )


def normalise(world: World, labels: dict[str, str], text: str) -> str:
    """Replace what differs between two stacks (vault URL, version ids) with stable names."""
    text = text.replace(world.stack.vault_url, "VAULT").replace(world.stack.vault_name, "kv")
    for label, version in labels.items():
        text = text.replace(version, label)
    return text


def apim_state(world: World, labels: dict[str, str]) -> dict[str, Any]:
    """Entity -> secret and backend -> entity ids, per service, normalised."""
    state = {}
    with world.stack.state.lock:
        for svc in world.stack.state.services.values():
            for kind, store in (("certificates", svc.certificates), ("backends", svc.backends)):
                for key, entity in store.items():
                    props = entity.properties
                    value = (
                        props["keyVault"]["secretIdentifier"]
                        if kind == "certificates"
                        else props["credentials"]["certificateIds"]
                    )
                    state[f"{kind}/{key}"] = normalise(world, labels, json.dumps(value))
    return state


def list_requests(world: World) -> int:
    """ARM list requests (entity and backend collections, every page)."""
    return sum(
        1
        for e in world.stack.request_log.arm.entries()
        if e.method == "GET"
        and e.path.rstrip("/").rsplit("/", 1)[-1] in {"certificates", "backends"}
    )


def replay(
    world: World,
    tmp: Path,
    capsys: pytest.CaptureFixture[str],
    handler_of: Callable[[Any], EventHandler],
) -> tuple[list[dict[str, Any]], Counter[str], dict[str, str]]:
    """Run the mixed replay through ``handler_of(service)``: the normalised JSON lines, the
    counts and the version labels."""
    labels = scene(world)
    audit = MemoryAuditSink()
    service = bootstrap.build_service(world.settings(), clock=world.clock, audit=audit)
    world.stack.request_log.arm.clear()
    capsys.readouterr()
    counts = run_replay(handler_of(service), audit, items(world, labels, tmp), as_json=True)
    out = capsys.readouterr().out.splitlines()
    return [json.loads(normalise(world, labels, line)) for line in out], counts, labels


@pytest.fixture(name="twin")
def _twin(e2e_pki: E2ePki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A second, identical devstack world."""
    (tmp_path / "twin").mkdir()
    with Devstack.start() as stack:
        yield World(stack, e2e_pki, tmp_path / "twin", monkeypatch)


def test_replay_shares_listings_and_decides_as_handle(world, twin, tmp_path, capsys):
    """Both ways: the same lines, counts, writes and end state; the batch lists APIM 4 times
    (the first event; again after the v2 write; the unrelated certificate; again after the v4
    write) where handle lists it for each of the 12 events that reach APIM."""
    (tmp_path / "fresh").mkdir()
    (tmp_path / "shared").mkdir()
    fresh_lines, fresh_counts, fresh = replay(world, tmp_path / "fresh", capsys, lambda s: s)
    shared_lines, shared_counts, shared = replay(
        twin, tmp_path / "shared", capsys, lambda s: s.batch()
    )

    assert [line["decision"] for line in fresh_lines] == EXPECTED
    assert shared_lines == fresh_lines
    assert shared_counts == fresh_counts
    assert "chain.untrusted" in shared_lines[7]["findings"]
    assert apim_state(twin, shared) == apim_state(world, fresh)
    assert [(w.method, normalise(twin, shared, w.path)) for w in twin.writes()] == [
        (w.method, normalise(world, fresh, w.path)) for w in world.writes()
    ]
    # one listing of a certificate = the entities of the 2 services (pin lists no backends)
    assert list_requests(world) == 11 * 2 + 2
    assert list_requests(twin) == 3 * 2 + 2

"""Scale benchmark: what one ``certrotate replay`` of one event costs as the APIM service grows.

Run: ``.venv/bin/python bench/bench_scale.py [--sizes 100,1000,5000,20000] [--runs 5]
[--strategies pin,blue-green] [--importtime]``; a quick run: ``--sizes 100,1000 --runs 3``.

For each size, one devstack (``--ephemeral``) holds one APIM service built through the SDK by
``devstack.scene.build_scale_scene``: N backends, 3 of them presenting ``partner-mtls``, 10
certificate entities. For each strategy, after a warm-up rotation, each run imports a new
version (untimed) and runs ``certrotate replay EVENT --json`` in a fresh process (the
Functions app's settings from the scene's ``env``; no lock, no audit table), then replays the
same event again (the duplicate). Per run the ARM requests the stand-in logged are counted and
compared with the per-strategy lower bound, computed independently from the APIM state before
and after:

- ``pin``: certificate-entity list pages + 3 per re-pinned entity (the If-Match read, the PUT,
  the verify read). The backends are not part of a pin rotation.
- ``blue-green``: entity pages + backend pages + 1 write per changed target + 1 verify read per
  written entity + 1 If-Match read per conditional update of an existing target.
- duplicate: ``pin`` the entity pages; ``blue-green`` entity and backend pages.

Wall time is the process's (start to exit), in-process time the canonical audit record's
``duration_ms`` (the handling of the event, clients built lazily inside it; read from the
records ``--audit-log FILE`` appends, since the audit lines reach stderr only with
``--verbose``), peak RSS from
``wait4`` (through a small launcher: Linux starts a child's peak RSS at its parent's). The baseline is ``bench/minimal_pin.py`` (read the secret, list the entities, PUT
the bound one; its in-process time is after its imports), run in its own process interleaved
with the ``pin`` runs of the same size; both strategies' ratios are against it. Medians.

Then the devstack's persistence cost per write at each size (a persistent state, the save
after one backend write), and the fixed cost: ``certrotate replay`` of an event that is ignored before any Azure call
(a Secret event) against ``minimal_pin.py --start-only`` (imports and clients, no call), and
with ``--importtime`` the slowest imports of a rotating replay, by package
(``python -X importtime``).

Exit status is non-zero when a rotation's or a duplicate's ARM requests exceed the bound, or
the pin ratio exceeds 1.3x at 5,000 backends or more (the issue's "done when").
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.scene import ScaleScene, build_scale_scene
from devstack.stack import Devstack

HERE = Path(__file__).resolve().parent
MINIMAL = HERE / "minimal_pin.py"
SERVICE = "apim-scale"
ARM_PAGE = 100
BUDGET, BUDGET_FROM = 1.3, 5_000
WRITES = ("PUT", "PATCH", "DELETE")
Snapshot = dict[tuple[str, str], tuple[str, str]]  # (kind, key) -> (etag, secret identifier)


@dataclass
class Proc:
    """One finished subprocess: wall seconds, peak RSS (KiB), stdout and stderr."""

    wall: float
    rss_kib: int
    out: str
    err: str
    status: int


# Runs the command and reports its wall time and peak RSS from ``wait4``. A small interpreter
# launches it because Linux starts a child's peak RSS at its parent's (the RSS of the process
# that forked it, here a bench holding a 20,000-backend devstack), not at zero.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
sys.stderr.write(f"\\n@@ {usage.ru_maxrss} {wall} {os.waitstatus_to_exitcode(status)}\\n")
"""


def run(argv: list[str], env: dict[str, str]) -> Proc:
    """Run ``argv`` to completion: its wall time, peak RSS, output and exit status."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        subprocess.run(  # noqa: PLW1510 - the launcher reports the status
            [sys.executable, "-S", "-c", _LAUNCHER, *argv], env=env, stdout=out, stderr=err
        )
        out.seek(0)
        err.seek(0)
        text = err.read().decode()
        text, _, report = text.rstrip("\n").rpartition("\n@@ ")
        rss, wall, status = report.split()
        return Proc(float(wall), int(rss), out.read().decode(), text, int(status))


def certrotate() -> list[str]:
    script = Path(sys.executable).parent / "certrotate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rotation"]


def base_env() -> dict[str, str]:
    """Only what a process needs: nothing like AzureWebJobsStorage leaks in from the caller."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
    return {k: os.environ[k] for k in keep if k in os.environ}


def canonical_ms(audit_log: Path) -> float:
    """``duration_ms`` of the canonical audit record in ``audit_log`` (``replay --audit-log``:
    one JSON object per record; the audit JSON lines reach stderr only with ``--verbose``)."""
    for line in audit_log.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("duration_ms") is not None and record.get("event") != "rotation.target":
            return float(record["duration_ms"])
    raise RuntimeError(f"no canonical audit record in {audit_log}")


def snapshot(scene: ScaleScene) -> Snapshot:
    state = scene.stack.state
    with state.lock:
        svc = state.service(scene.service)
        assert svc is not None
        snap: Snapshot = {}
        for kind, store in (("certificates", svc.certificates), ("backends", svc.backends)):
            for key, entity in store.items():
                secret = (entity.properties.get("keyVault") or {}).get("secretIdentifier") or ""
                snap[kind, key] = (entity.etag, secret)
        return snap


def pages(snap: Snapshot, kind: str) -> int:
    return max(1, math.ceil(sum(1 for k in snap if k[0] == kind) / ARM_PAGE))


def bounds(strategy: str, before: Snapshot, after: Snapshot) -> tuple[int, int, int]:
    """(ARM requests, ARM writes, duplicate ARM requests) lower bounds for one rotation."""
    entity_pages = pages(before, "certificates")
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    if strategy == "pin":
        repinned = [k for k in changed if k[0] == "certificates"]
        return entity_pages + 3 * len(repinned), len(repinned), entity_pages
    listing = entity_pages + pages(before, "backends")
    verified = {k for k in changed if k[0] == "certificates" and k in after}
    etag_reads = {k for k in changed if k in before and k in after}
    requests = listing + len(changed) + len(verified) + len(etag_reads)
    return requests, len(changed), listing


@dataclass
class Row:
    """Medians of one (size, strategy)."""

    backends: int
    strategy: str
    requests: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    bound: list[tuple[int, int, int]] = field(default_factory=list)
    dup_requests: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    inproc: list[float] = field(default_factory=list)
    dup_wall: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)


class Bench:
    def __init__(self, scene: ScaleScene, tmp: Path) -> None:
        self.scene, self.tmp = scene, tmp
        self.log = scene.stack.request_log

    def event_file(self, version: str) -> Path:
        path = self.tmp / f"event-{version}.json"
        path.write_text(json.dumps([self.scene.event(version)]))
        return path

    def env(self, strategy: str) -> dict[str, str]:
        extra = {"ROTATION_STRATEGY": strategy, "ROTATION_RETAIN_PREVIOUS": "1"}
        return {**base_env(), **self.scene.env(**extra), "ROTATION_LOCK": "off"}

    def replay(self, path: Path, strategy: str, expect: str) -> tuple[Proc, float]:
        """One ``certrotate replay --json`` of ``path``, and its in-process milliseconds from the
        canonical audit record (``--audit-log``: a few appended lines, no table sink)."""
        audit_log = self.tmp / "audit.jsonl"
        audit_log.write_text("", encoding="utf-8")
        argv = [*certrotate(), "replay", "--json", "--audit-log", str(audit_log), str(path)]
        proc = run(argv, self.env(strategy))
        decision = json.loads(proc.out.splitlines()[-1])["decision"] if proc.out else None
        if proc.status != 0 or decision != expect:
            raise RuntimeError(f"replay: {decision} (expected {expect}): {proc.err[-2000:]}")
        return proc, canonical_ms(audit_log)

    def rotation(self, strategy: str, row: Row | None) -> None:
        path = self.event_file(self.scene.new_version())
        before = snapshot(self.scene)
        self.log.clear()
        proc, inproc = self.replay(path, strategy, "applied")
        after = snapshot(self.scene)
        arm = self.log.arm.entries()
        self.log.clear()
        dup, _ = self.replay(path, strategy, "already_current")
        if row is None:
            return
        row.requests.append(len(arm))
        row.writes.append(sum(1 for e in arm if e.method in WRITES))
        row.bound.append(bounds(strategy, before, after))
        row.dup_requests.append(len(self.log.arm.entries()))
        row.wall.append(proc.wall)
        row.inproc.append(inproc)
        row.dup_wall.append(dup.wall)
        row.rss.append(proc.rss_kib)

    def minimal(self, into: list[tuple[float, float, int]] | None) -> None:
        path = self.event_file(self.scene.new_version())
        proc = run([sys.executable, str(MINIMAL), str(path)], self.env("pin"))
        if proc.status != 0:
            raise RuntimeError(f"minimal script failed: {proc.err[-2000:]}")
        result = json.loads(proc.out)
        assert result["updated"] >= 1, result
        if into is not None:
            into.append((proc.wall, result["in_process_ms"], proc.rss_kib))


def measure(
    n: int, strategies: list[str], runs: int
) -> tuple[list[Row], list[tuple[float, float, int]], tuple[float, float, float]]:
    """Rows for each strategy, the minimal script's runs, and the scene's creation (wall
    seconds, CPU seconds, the 1-minute load average after it)."""
    with tempfile.TemporaryDirectory() as tmp, Devstack.start(services=(SERVICE,)) as stack:
        scene = build_scale_scene(stack, backends=n)
        bench = Bench(scene, Path(tmp))
        rows: list[Row] = []
        minimal: list[tuple[float, float, int]] = []
        for strategy in strategies:
            row = Row(n, strategy)
            bench.rotation(strategy, None)  # warm-up (and blue-green's steady state)
            steps: list[Callable[[], None]] = [functools.partial(bench.rotation, strategy, row)]
            if strategy == "pin":
                bench.minimal(None)
                steps.append(lambda: bench.minimal(minimal))
            for i in range(runs):
                for step in steps if i % 2 else reversed(steps):
                    step()
            rows.append(row)
        if not minimal:  # no pin row: measure the baseline on its own
            bench.minimal(None)
            for _ in range(runs):
                bench.minimal(minimal)
        return rows, minimal, (scene.seconds, scene.cpu_seconds, os.getloadavg()[0])


def fixed_cost(runs: int) -> tuple[tuple[float, float, float, float], list[tuple[int, str]]]:
    """Medians of (replay wall, replay RSS MiB, minimal --start-only wall, its RSS MiB), and the
    slowest imports of a ``certrotate replay`` that rotates (adapters included)."""
    with tempfile.TemporaryDirectory() as tmp, Devstack.start(services=(SERVICE,)) as stack:
        scene = build_scale_scene(stack, backends=3, entities=2)
        event = scene.event(scene.versions[0])
        event["eventType"] = "Microsoft.KeyVault.SecretNewVersionCreated"
        event["data"]["ObjectType"] = "Secret"
        path = Path(tmp) / "ignored.json"
        path.write_text(json.dumps([event]))
        env = {**base_env(), **scene.env(), "ROTATION_LOCK": "off"}
        ours, base = [], []
        for _ in range(runs):
            ours.append(run([*certrotate(), "replay", "--json", str(path)], env))
            base.append(run([sys.executable, str(MINIMAL), str(path), "--start-only"], env))
        assert all(p.status == 0 for p in ours + base), [p.err for p in ours + base]
        rotate = Path(tmp) / "rotate.json"
        rotate.write_text(json.dumps([scene.event(scene.new_version())]))
        argv = [sys.executable, "-X", "importtime", "-m", "rotation", "replay", str(rotate)]
        imports = slowest_imports(run(argv, env).err)
        medians = (
            statistics.median(p.wall for p in ours),
            statistics.median(p.rss_kib for p in ours) / 1024,
            statistics.median(p.wall for p in base),
            statistics.median(p.rss_kib for p in base) / 1024,
        )
        return medians, imports


def slowest_imports(stderr: str) -> list[tuple[int, str]]:
    """(cumulative microseconds, package) from ``-X importtime`` output: each package's
    outermost import (``azure.*`` by its first three name parts), slowest first."""
    packages: dict[str, int] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            parts = match[2].split(".")
            depth = {"azure": 3 if parts[1:2] in (["mgmt"], ["keyvault"]) else 2, "rotation": 2}
            name = ".".join(parts[: depth.get(parts[0], 1)])
            packages[name] = max(packages.get(name, 0), int(match[1]))
    return sorted(((t, n) for n, t in packages.items()), reverse=True)


def persistence(n: int, writes: int = 15) -> tuple[float, int]:
    """(median ms, rows) of the save after one backend write, in a persistent devstack holding
    ``n`` backends (seeded directly: this measures the state, not HTTP)."""
    with tempfile.TemporaryDirectory() as tmp, Devstack.start(Path(tmp), ephemeral=False) as stack:
        svc = stack.apim_services[0]
        for i in range(n):
            stack.put_backend(svc, f"b{i}", url="https://x.test", certificate_ids=[])
        stack.state.save()
        times = []
        for i in range(writes):
            stack.put_backend(svc, f"b{i}", url="https://y.test", certificate_ids=[])
            start = time.perf_counter()
            stack.state.save()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000, stack.state.saved_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000,20000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strategies", default="pin,blue-green")
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    strategies = args.strategies.split(",")
    ok = True
    print(f"certrotate replay of one event, one APIM service, 3 bound backends, 10 entities; "
          f"medians of {args.runs} runs")  # fmt: skip
    header = (
        "| backends | strategy | ARM requests / bound | writes / bound | duplicate ARM / bound "
        "| wall (in-process) | duplicate wall | peak RSS | minimal script wall (in-process) "
        "| ratio |"
    )
    lines = [header, "|" + "---|" * 10]
    created: list[str] = []
    for n in sizes:
        rows, minimal, (seconds, cpu, load) = measure(n, strategies, args.runs)
        created.append(f"{n:,}: {seconds:.1f} s ({cpu:.1f} CPU-s, load {load:.1f})")
        base_wall = statistics.median(m[0] for m in minimal)
        base_ms = statistics.median(m[1] for m in minimal)
        for row in rows:
            requests, writes = max(row.requests), max(row.writes)
            bound = max(row.bound)
            dup = max(row.dup_requests)
            wall = statistics.median(row.wall)
            ratio = wall / base_wall
            ok &= requests <= bound[0] and dup <= bound[2]
            if row.strategy == "pin" and n >= BUDGET_FROM:
                ok &= ratio <= BUDGET
            lines.append(
                f"| {n:,} | {row.strategy} | {requests} / {bound[0]}"
                f"{'' if requests <= bound[0] else ' OVER'} | {writes} / {bound[1]} "
                f"| {dup} / {bound[2]}{'' if dup <= bound[2] else ' OVER'} "
                f"| {wall:.2f} s ({statistics.median(row.inproc):.0f} ms) "
                f"| {statistics.median(row.dup_wall):.2f} s "
                f"| {statistics.median(row.rss) / 1024:.0f} MB "
                f"| {base_wall:.2f} s ({base_ms:.0f} ms) | {ratio:.2f}x |"
            )
        print("\n".join(lines[-len(rows) :]), flush=True)  # progress, size by size
    print()
    print("\n".join(lines))
    print(f"\nARM requests and duplicates: the most of any run (bounds: see the docstring); "
          f"ratio: rotation wall / minimal script wall, budget <= {BUDGET}x for pin from "
          f"{BUDGET_FROM:,} backends.")  # fmt: skip
    print("scene creation through the SDK (entities + backends; the CPU seconds are the stand-in's "
          "and the clients', so an idle 2-CPU machine needs about half of them in wall time): "
          + ", ".join(created))  # fmt: skip
    saves = [(n, *persistence(n)) for n in sizes]
    print("devstack persistence, per write (the save after one backend PUT, state dir): "
          + ", ".join(f"{n:,}: {ms:.2f} ms ({rows} rows)" for n, ms, rows in saves))  # fmt: skip
    (ours, ours_rss, base, base_rss), imports = fixed_cost(args.runs)
    print(f"\nfixed cost (process start to exit, no Azure call): certrotate replay of an ignored "
          f"event {ours:.2f} s ({ours_rss:.0f} MB), minimal script --start-only {base:.2f} s "
          f"({base_rss:.0f} MB): {ours - base:+.2f} s")  # fmt: skip
    if args.importtime:
        print("slowest imports of a rotating `certrotate replay` (cumulative, -X importtime):")
        for spent_us, imported in imports[:20]:
            print(f"   {spent_us / 1000:7.1f} ms  {imported}")
    loadavg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end: {loadavg} ({os.cpu_count()} CPUs): wall times scale with it")
    print("\nPASS" if ok else "\nFAIL (see OVER and the ratio budget)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""``certrotate`` in a process of its own: the garbage collector is paused during start-up steps
and everything is frozen at exit; inside a caller's process (``CliRunner``) it is left alone."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rotation.entrypoints import cli


@pytest.fixture(name="collector")
def _collector() -> Iterator[None]:
    """Leave the test process's collector as it was (enabled, nothing frozen)."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def test_a_start_up_step_of_an_owned_process_pauses_then_freezes(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli._Process, "owned", True)  # what main() sets
    before = gc.get_freeze_count()
    with cli.startup():
        inside = gc.isenabled()
        allocated = [[i] for i in range(1_000)]

    assert not inside
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(allocated)


def test_a_caller_s_process_keeps_its_collector(collector: None) -> None:
    assert not cli.owns_process()
    before = gc.get_freeze_count()
    with cli.startup():
        inside = gc.isenabled()

    assert inside
    assert gc.get_freeze_count() == before


def test_a_failing_step_resumes_collection(
    collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli._Process, "owned", True)  # what main() sets
    with pytest.raises(RuntimeError), cli.startup():
        raise RuntimeError("import failed")

    assert gc.isenabled()


def test_main_owns_its_process_and_freezes_it_at_exit() -> None:
    """After the command (``--version``): owned, collecting, and frozen before exit handlers."""
    code = (
        "import atexit, gc, sys\n"
        "from rotation.entrypoints import cli\n"
        "atexit.register(lambda: print(cli.owns_process(), gc.isenabled(),"
        " gc.get_freeze_count() > 0))\n"
        "sys.argv = ['certrotate', '--version']\n"
        "cli.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert done.stdout.splitlines()[-1] == "True True True"

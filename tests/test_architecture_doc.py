"""docs/architecture.md is the design reference: the layout it names is the layout of the code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
_PATH = re.compile(r"`((?:rotation|devstack|bench|tests)/[\w/]*(?:\.py|/)|function_app\.py)`")


def _named_paths() -> set[str]:
    return set(_PATH.findall(DOC.read_text(encoding="utf-8")))


def test_every_path_named_in_the_architecture_exists():
    """A module or package moved or deleted without updating docs/architecture.md fails here."""
    named = _named_paths()

    assert len(named) > 40  # the layout table is there
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_every_public_module_of_rotation_is_in_the_architecture():
    """A new module under rotation/ gets its line in the layout (private ``_x.py`` modules,
    package ``__init__`` files and ``__main__`` excepted)."""
    named = _named_paths()
    modules = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "rotation").rglob("*.py")
        if not p.name.startswith("_")
    }

    assert sorted(modules - named) == []


def test_the_repository_cites_no_design_document_outside_itself():
    """Nothing outside docs/architecture.md cites the external design document (its name in
    capitals) or a numbered section of it (a section sign and a number); sections of an RFC
    ("RFC 5280 §6.3", "the §7.1 comparison" after an RFC was named) are standards, not it."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(
        "architecture".upper()
        + r"|(?<!RFC \d{4} )(?<!the )\N{SECTION SIGN}\s?\d"
        + "|wire"
        + r" reference|\.\./shared/"
    )
    offenders = [
        name
        for name in tracked
        if name not in {"docs/architecture.md", "tests/test_architecture_doc.py"}
        and name.endswith((".py", ".md", ".toml", ".json", ".txt"))
        and (ROOT / name).is_file()
        and pattern.search((ROOT / name).read_text(encoding="utf-8", errors="replace"))
    ]

    assert offenders == []

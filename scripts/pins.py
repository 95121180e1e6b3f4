"""Rewrite requirements.txt from the venv: the runtime closure of [project.dependencies], pinned.

Run with the project's venv after changing a runtime dependency in pyproject.toml and installing
it (`make pins`). tests/test_meta.py checks the result against the same closure.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"


def closure(roots: list[Requirement]) -> set[str]:
    """The installed distributions ``roots`` need on this platform, transitively."""
    seen: set[str] = set()
    stack = [r.name for r in roots]
    while stack:
        name = canonicalize_name(stack.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                stack.append(requirement.name)
    return seen


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    roots = [Requirement(t) for t in project["dependencies"]]
    direct = sorted(canonicalize_name(r.name) for r in roots)
    transitive = sorted(closure(roots) - set(direct))
    header = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("# direct"):
            break
        header.append(line)
    lines = [*header, "# direct"]
    lines += [f"{n}=={metadata.version(n)}" for n in direct]
    lines += ["# transitive"]
    lines += [f"{n}=={metadata.version(n)}" for n in transitive]
    REQUIREMENTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"requirements.txt: {len(direct)} direct, {len(transitive)} transitive pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())

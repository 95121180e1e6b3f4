"""The import graph of rotation/: no cycles, a pure domain, an intake free of the Functions host.

Every ``import`` and ``from ... import`` in every module counts, including the lazy ones inside
functions and the ones under ``if TYPE_CHECKING:`` (a cycle of type-only imports is still a
cycle for a reader). ``from package import name`` is an edge to ``package.name`` when that is a
module; importing ``a.b.c`` is an edge to ``a.b.c`` only, not to the packages above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rotation"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in MODULES else base)
    return names


GRAPH: dict[str, set[str]] = {
    name: {m for m in _imported(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports():
    """The scan finds known edges (so an empty cycle list means something)."""
    assert "rotation.rollout.state" in GRAPH["rotation.rollout.converge"]
    assert "rotation.domain.decisions" in GRAPH["rotation.rollout.validate"]
    assert "rotation.service" in GRAPH["rotation.bootstrap"]  # a lazy import counts


def test_no_import_cycle_in_rotation():
    """No module of rotation/ reaches itself through its imports."""
    assert _cycles(GRAPH) == []


def test_a_cycle_is_found():
    """The cycle finder reports a loop through three modules, and nothing for a chain."""
    loop = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    assert _cycles(loop) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_rollout_state_module_is_a_leaf_of_the_rollout_package():
    """``rotation.rollout.state`` imports nothing else from the rollout package or above it."""
    allowed = ("rotation.domain.", "rotation.ports")
    assert {m for m in GRAPH["rotation.rollout.state"] if not m.startswith(allowed)} == set()


_DOMAIN_FORBIDDEN = (
    "azure", "os", "sys", "io", "socket", "ssl", "subprocess", "pathlib", "shutil", "tempfile",
    "urllib.request", "http", "httpx", "requests", "logging", "structlog", "click", "rich",
    "devstack", "rotation.logconfig", "rotation.config", "rotation.adapters", "rotation.intake",
    "rotation.rollout", "rotation.entrypoints", "rotation.service", "rotation.bootstrap",
    "rotation.testing",
)  # fmt: skip


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("rotation.domain")))
def test_domain_module_is_pure(name: str):
    """The domain imports no Azure SDK, no environment, no I/O, no logging setup, nothing of the
    shell around it, and calls neither ``open`` nor ``os.environ`` / ``os.getenv``."""
    path = MODULES[name]
    imported = _imported(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls_open = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        for n in ast.walk(tree)
    )
    reads_env = any(
        isinstance(n, ast.Attribute) and n.attr in {"environ", "getenv"} for n in ast.walk(tree)
    )

    assert sorted(m for m in imported if _matches(m, _DOMAIN_FORBIDDEN)) == []
    assert (calls_open, reads_env) == (False, False)


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("rotation.intake")))
def test_intake_does_not_import_the_functions_host(name: str):
    """Converting ``azure.functions`` types is the entrypoint's job, not the intake's."""
    imported = _imported(MODULES[name])

    assert sorted(m for m in imported if _matches(m, ("azure", "rotation.entrypoints"))) == []


def test_the_scan_catches_a_forbidden_import(tmp_path: Path):
    """A module importing ``os`` and calling ``open`` is what the purity check flags."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom azure import functions\nopen('x')\n", encoding="utf-8")

    tree = ast.parse(bad.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert sorted(m for m in names if _matches(m, _DOMAIN_FORBIDDEN)) == ["azure", "os"]

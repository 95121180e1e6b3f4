"""Meta-tests: invariants of the package itself (structlog's test_packaging, httpx's exports)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirement_names(lines: list[str]) -> list[str]:
    return sorted(
        line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
    )


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


class TestPackaging:
    def test_requirements_txt_equals_project_dependencies(self):
        """requirements.txt (what a Functions build installs) lists exactly the runtime deps."""
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        declared = sorted(pyproject["project"]["dependencies"])

        listed = _requirement_names((ROOT / "requirements.txt").read_text().splitlines())

        assert declared == listed

    def test_console_script_points_at_the_cli(self):
        """`certrotate` is the click group in rotation.entrypoints.cli."""
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

        assert pyproject["project"]["scripts"]["certrotate"] == "rotation.entrypoints.cli:main"


class TestArchitecture:
    def test_domain_imports_nothing_from_azure_or_io_layers(self):
        """rotation.domain is pure: no azure, no adapters, no entrypoints, no devstack."""
        forbidden = re.compile(
            r"^(azure|rotation\.(adapters|entrypoints|bootstrap)|devstack|httpx)"
        )
        offenders = {
            str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if forbidden.match(n))
            for path in (ROOT / "rotation" / "domain").rglob("*.py")
        }

        assert {k: v for k, v in offenders.items() if v} == {}

    def test_only_config_reads_the_environment(self):
        """Nothing in rotation/ reads os.environ/os.getenv except config.py (and bootstrap passes it)."""
        pattern = re.compile(r"os\.(environ|getenv)")
        allowed = {"rotation/config/settings.py", "rotation/bootstrap.py"}
        readers = {
            str(path.relative_to(ROOT))
            for path in (ROOT / "rotation").rglob("*.py")
            if pattern.search(path.read_text(encoding="utf-8"))
        }

        assert readers - allowed == set()

    def test_rotation_imports_devstack_only_from_cli_commands(self):
        """The product never depends on the local stand-ins, except the demo/devstack commands."""
        allowed = {
            "rotation/entrypoints/cli/devstack.py",
            "rotation/entrypoints/demo.py",
        }
        importers = {
            str(path.relative_to(ROOT))
            for path in (ROOT / "rotation").rglob("*.py")
            if any(n == "devstack" or n.startswith("devstack.") for n in _imports(path))
        }

        assert importers - allowed == set()


class TestBuildMetadata:
    def test_license_is_an_spdx_string_so_setuptools_does_not_warn(self):
        """A TOML-table license makes every install print setuptools' deprecation warning."""
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

        assert pyproject["project"]["license"] == "MIT"
        assert pyproject["build-system"]["requires"] == ["setuptools>=77"]

    def test_editable_install_is_a_plain_path_entry_so_setuptools_does_not_warn(self):
        """With the root as the package dir (``{"": "."}``) setuptools makes ``pip install -e .``
        a .pth entry; otherwise it installs a meta-path finder and prints its "Editable
        installation" warning on every install, --quiet or not."""
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

        assert pyproject["tool"]["setuptools"]["package-dir"] == {"": "."}

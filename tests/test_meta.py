"""Meta-tests: invariants of the package itself (structlog's test_packaging, httpx's exports)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.pins import closure as runtime_closure

ROOT = Path(__file__).resolve().parent.parent


CLI_ONLY = {"click", "rich"}
EXACT_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)$")


def _pins() -> dict[str, str]:
    """requirements.txt as {canonical name: version}; every line must be ``name==version``."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = EXACT_PIN.match(text)
        assert match, f"requirements.txt: {text!r} is not an exact pin (name==version)"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


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
    def test_requirements_txt_pins_every_runtime_dependency_within_its_range(self):
        """Each [project.dependencies] range has an exact pin in requirements.txt that it allows."""
        pins = _pins()

        for text in _pyproject()["project"]["dependencies"]:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is not pinned in requirements.txt"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"requirements.txt pins {name}=={pins[name]}, outside {requirement.specifier}"
            )

    def test_requirements_txt_is_the_runtime_closure_as_installed(self):
        """requirements.txt is exactly the runtime dependencies and what they pull in, at the
        versions installed in .venv (what the tests ran against): a reproducible remote build."""
        roots = [Requirement(t) for t in _pyproject()["project"]["dependencies"]]
        pins = _pins()

        closure = runtime_closure(roots)

        assert set(pins) == closure
        assert {n: metadata.version(n) for n in pins} == pins

    def test_cli_only_dependencies_are_an_extra_not_deployed(self):
        """click and rich are the `cli` extra: not runtime dependencies, not in the package."""
        project = _pyproject()["project"]
        cli = {
            canonicalize_name(Requirement(t).name) for t in project["optional-dependencies"]["cli"]
        }
        runtime = {canonicalize_name(Requirement(t).name) for t in project["dependencies"]}

        assert cli == CLI_ONLY
        assert not CLI_ONLY & runtime
        assert not CLI_ONLY & set(_pins())

    def test_console_script_points_at_the_cli(self):
        """`certrotate` is the click group in rotation.entrypoints.cli."""
        pyproject = _pyproject()

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

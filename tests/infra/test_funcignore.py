"""What a deployment uploads: the repository's files minus ``.funcignore`` (gitignore syntax,
as Core Tools and azd apply it), listed and checked."""

from __future__ import annotations

import shutil
import subprocess

import pathspec
import pytest

from tests.infra.bicep import ROOT

# Produced on a developer's machine or in CI, never tracked; none may reach the package.
GENERATED = [
    ".venv/bin/python",
    ".venv-checkov/bin/checkov",
    "node_modules/azurite/package.json",
    ".azure/prod/.env",
    ".devstack/env",
    "rotation/__pycache__/config.cpython-311.pyc",
    "rotation/domain/__pycache__/model.cpython-311.pyc",
    ".mypy_cache/3.11/rotation.json",
    ".ruff_cache/content",
    ".pytest_cache/v/cache",
    ".hypothesis/examples/x",
    "local.settings.json",
    "certrotate-demo-audit.jsonl",
    ".coverage",
    "certrotate.egg-info/PKG-INFO",
    "__azurite_db_blob__.json",
]
# Everything the Functions host needs, and nothing else at the top level.
PACKAGE_TOP_LEVEL = {"function_app.py", "host.json", "requirements.txt", "rotation", "trust"}


def _tracked() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the repository's files")
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [p for p in listing.split("\0") if p]


def _uploaded(paths: list[str]) -> list[str]:
    spec = pathspec.GitIgnoreSpec.from_lines(
        (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    )
    return sorted(p for p in paths if not spec.match_file(p))


def test_package_holds_the_app_and_nothing_else():
    """Uploaded: function_app.py, host.json, requirements.txt and rotation/ (every module)."""
    tracked = _tracked()

    uploaded = _uploaded(tracked)

    assert {"function_app.py", "host.json", "requirements.txt"} <= set(uploaded)
    assert {p for p in tracked if p.startswith("rotation/")} <= set(uploaded)
    assert {p.split("/")[0] for p in uploaded} <= PACKAGE_TOP_LEVEL


@pytest.mark.parametrize(
    "folder", ["tests/", "devstack/", "bench/", "docs/", "infra/", "scripts/"]
)
def test_development_folders_stay_out(folder):
    """Tests, the local stack, benchmarks, docs and the templates are never uploaded."""
    tracked = [p for p in _tracked() if p.startswith(folder)]

    assert tracked, f"nothing tracked under {folder}: the check would prove nothing"
    assert _uploaded(tracked) == []


def test_generated_files_stay_out():
    """Virtual environments, caches, local settings and audit logs are never uploaded."""
    assert _uploaded(GENERATED) == []


def test_tooling_files_stay_out():
    """The packaging and tooling files at the root are not part of the app."""
    root_files = [p for p in _tracked() if "/" not in p]

    uploaded = _uploaded(root_files)

    assert uploaded == ["function_app.py", "host.json", "requirements.txt"]

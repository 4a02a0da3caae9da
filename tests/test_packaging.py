"""A quiet set-up: the package metadata gives setuptools nothing to warn about (an SPDX
license string, every importable data folder declared), so `bash scripts/setup` prints
nothing on a fresh machine."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setuptools_reads_the_configuration_without_warnings():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), ROOT / "pyproject.toml")
    messages = [str(w.message).splitlines()[0] for w in caught
                if "setuptools" in type(w.message).__module__]
    assert messages == []


def test_license_is_an_spdx_string_and_data_folders_are_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str)
    tool = project["tool"]["setuptools"]
    packages = set(tool["packages"])
    for package, folder in tool["package-dir"].items():
        for sub in (ROOT / folder).rglob("*"):
            if not sub.is_dir() or sub.name == "__pycache__":
                continue
            parts = sub.relative_to(ROOT / folder).parts
            if all(p.isidentifier() for p in parts):  # importable: must be declared
                dotted = ".".join((package, *parts))
                assert dotted in packages, f"{dotted} ({sub}) is not in [tool.setuptools]"

"""The project's metadata in the form current packaging tools read without a warning."""

from __future__ import annotations

import tomllib

from conftest import ROOT


def test_the_licence_is_an_spdx_expression_with_its_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # A table ({text = ...}) makes setuptools 77+ warn on every install.
    assert isinstance(project["license"], str)
    assert all((ROOT / name).is_file() for name in project["license-files"])

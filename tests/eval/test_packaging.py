"""The eval engine ships: every package under ``segdata/`` is listed in pyproject.toml's explicit
``[tool.setuptools] packages``, else a wheel (a non-editable install) leaves it out and
``segdata eval`` dies with an ImportError on a user's machine while every editable checkout works."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def test_every_segdata_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "segdata").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert "segdata.eval" in on_disk
    assert sorted(on_disk - listed) == []

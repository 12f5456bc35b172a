"""The docstring examples of every module run and hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest


def _modules():
    import segdata.analyses
    import segdata.converters

    names = set()
    for package in (segdata, segdata.analyses, segdata.converters):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            names.add(info.name)
    return sorted(n for n in names if not n.endswith("__main__"))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    if name.startswith("segdata.torch"):  # the PyTorch bridge: an optional extra
        pytest.importorskip("torch", reason="segdata.torch needs PyTorch (pip install 'segdata[torch]')")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0

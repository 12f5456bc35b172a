"""The docstring examples of every module run and hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import segdata


def _modules():
    names = []
    for info in pkgutil.walk_packages(segdata.__path__, "segdata."):
        names.append(info.name)
    return sorted(n for n in names if not n.endswith("__main__"))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0

"""Exceptions raised by segdata.

The library raises; only the command-line layer turns these into messages and exit codes.
Every input error carries the offending path and a one-line description of what is wrong,
so that a message can name the file without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SegdataError(Exception):
    """Base class of every error segdata raises on purpose."""


class InputError(SegdataError):
    """A source file is missing, corrupt or inconsistent.

    Parameters
    ----------
    path : str or Path
        The file (or directory) that is wrong.
    problem : str
        What is wrong with it, in one line ("truncated PNG", "mask is 640x480, image is 641x480").
    hint : str, optional
        How to fix it, when there is something to suggest.
    """

    def __init__(self, path: str | Path, problem: str, hint: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __reduce__(self):  # keep path/problem when crossing process boundaries
        return (type(self), (self.path, self.problem, self.hint))


class LayoutNotFoundError(SegdataError):
    """A directory does not hold any layout a converter knows."""


class OutputExistsError(SegdataError):
    """The output path exists and neither overwrite nor resume was asked for."""


class FormatError(SegdataError):
    """A unified-format directory is not readable (missing manifest, wrong version)."""


class SelectionError(SegdataError, ValueError):
    """A split, layer or image asked for does not exist in the dataset; the message lists what it
    has. A usage error: the command line exits with code 2."""


class DeviceError(SegdataError):
    """The device asked for cannot be used here: PyTorch is not installed, or it has no such
    device (``--device cuda`` on a machine without CUDA). A system problem: exit code 1."""

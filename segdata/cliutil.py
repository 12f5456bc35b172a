"""Helpers of the command line (segdata/cli.py) that hold no command: the consoles and the one
`error:` line, the message for an error of the operating system, the result printed or the error
said, outputs written whole or not at all (a file through a temporary sibling, plots through a
staged folder), the progress bar. Imports nothing heavy: ``segdata --help`` stays fast."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
from pathlib import Path

import click

from .errors import SegdataError, SelectionError

#: the temporary sibling a command writes before renaming it into place (as segdata.convert's)
PARTIAL_SUFFIX = ".segdata-partial"


def console(stderr: bool = False):
    """A rich console on stdout (or stderr), without highlighting."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


@contextlib.contextmanager
def printing():
    """Printing a command's result: a failed write to standard output (a full disk, an output
    file on a read-only mount) is a system error, one line on stderr and exit 1, not a
    traceback and not exit 0 with the result lost. A closed pipe (``| head``) is left to click."""
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise
        with contextlib.suppress(OSError, ValueError, AttributeError):
            # what is still buffered can never be written: drop it, so that the interpreter's
            # last flush does not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        fail(system_error(exc, Path("<standard output>")))


def system_error(exc: OSError, where: Path | None = None) -> str:
    """One line for an error of the operating system: the path and the cause ("out/x.png: No
    space left on device"). ``where`` names the path when the error does not (a failed write to
    an open file); Arrow's errors name theirs in the text ("Failed to open local file '...'")."""
    path = exc.filename
    if path is None:
        named = re.search(r"local file '([^']+)'", str(exc))
        path = named.group(1) if named else where
    if exc.errno:
        cause = os.strerror(exc.errno)
    else:
        cause = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename2 is not None:
        path = f"{path} -> {exc.filename2}"
    return cause if path is None else f"{path}: {cause}"


@contextlib.contextmanager
def atomic_file(path: Path):
    """Yield where to write the file ``path``: a temporary sibling renamed onto ``path`` once
    written, removed when the block raises (nothing half-written is left). A path that exists
    and is not a regular file (``/dev/stdout``, a FIFO) is written directly."""
    if path.exists() and not path.is_file():
        yield path
        return
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def staged_directory(directory: Path):
    """Yield a temporary directory for files that belong in ``directory`` (plots); once the block
    finishes they are moved there (``directory`` is created if need be; other files in it are
    left alone), and when it raises the temporary directory is removed with what it holds."""
    absolute = directory.resolve()  # "." and ".." have no name to put a suffix on
    tmp = absolute.with_name(absolute.name + PARTIAL_SUFFIX)
    from .convert import remove_path

    try:
        remove_path(tmp)  # an earlier run's
        yield tmp
        directory.mkdir(parents=True, exist_ok=True)
        for file in sorted(tmp.iterdir()):
            os.replace(file, directory / file.name)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def moved(paths, directory: Path) -> list[str]:
    """The paths of files written by :func:`staged_directory`, where they ended up."""
    return [str(directory / Path(p).name) for p in paths]


class Progress:
    """A rich progress bar on stderr, fed by the library's ``progress(done, total)`` callback."""

    def __init__(self, description: str, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self.description = description
        self.bar = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console(stderr=True),
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=None)
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def stage(self, text: str) -> None:
        """Start a new stage of a long command: a line above the bar, the bar reset under ``text``
        (on stderr, and only when the bar is shown: a script reading --json sees nothing)."""
        if self.bar is not None:
            self.bar.console.print(f"[dim]·[/] {text}", markup=True, highlight=False)
            self.bar.update(self.task, description=text, completed=0, total=None)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


#: click settings every command shares
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextlib.contextmanager
def errors(where: Path | None = None):
    """Turn the library's exceptions into one-line messages and exit codes: a split, layer or
    option the data does not have is a usage error (2), anything else segdata raises on purpose a
    data or system problem (1), and so is an error of the operating system (a full disk, a
    read-only folder, a permission denied): one line naming the path (``where`` when the error
    names none) and the cause."""
    try:
        yield
    except SelectionError as exc:
        fail(str(exc), code=2)
    except SegdataError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(system_error(exc, where))


def scheduler_option(fn):
    return click.option(
        "--scheduler",
        metavar="ADDRESS",
        help="Run the per-image work on this Dask cluster (tcp://host:8786; needs `pip install 'segdata[dask]'` "
        "and the paths readable by the workers); the output is the same as in the local process pool.",
    )(fn)

"""Shared plumbing of the analyses' plots: figures without a display, PNG and SVG side by side.

matplotlib is imported here, lazily: analyses that are not asked for plots never import it.
Figures are plain :class:`matplotlib.figure.Figure` objects drawn by the Agg canvas that
``savefig`` attaches on its own: pyplot is never imported and ``matplotlib.use`` never called, so
a notebook user's backend stays what it was.
"""

from __future__ import annotations

from pathlib import Path


def new_figure(figsize: tuple[float, float] = (6.5, 4.5)):
    """A fresh ``(Figure, Axes)`` pair, not registered with pyplot (nothing to close)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


class FigureWriter:
    """Saves figures as ``<directory>/<name>.png`` and ``.svg`` and remembers what it wrote.

    >>> import tempfile
    >>> writer = FigureWriter(tempfile.mkdtemp())
    >>> fig, ax = writer.figure()
    >>> [p.suffix for p in writer.save(fig, "empty")]
    ['.png', '.svg']
    """

    def __init__(self, directory: str | Path, dpi: int = 120):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dpi = dpi
        self.written: list[Path] = []

    @staticmethod
    def figure(figsize: tuple[float, float] = (6.5, 4.5)):
        """A fresh ``(Figure, Axes)``: see :func:`new_figure`."""
        return new_figure(figsize)

    def save(self, fig, name: str) -> list[Path]:
        paths = []
        for ext in ("png", "svg"):
            path = self.directory / f"{name}.{ext}"
            fig.savefig(path, dpi=self.dpi, bbox_inches="tight")
            paths.append(path)
        self.written.extend(paths)
        return paths

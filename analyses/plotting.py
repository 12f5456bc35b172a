"""Shared plumbing of the analyses' plots: matplotlib without a display, PNG and SVG side by side.

matplotlib is imported here, lazily: analyses that are not asked for plots never import it.
"""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class FigureWriter:
    """Saves figures as ``<directory>/<name>.png`` and ``.svg`` and remembers what it wrote.

    >>> import tempfile
    >>> writer = FigureWriter(tempfile.mkdtemp())
    >>> fig, ax = writer.plt.subplots()
    >>> [p.suffix for p in writer.save(fig, "empty")]
    ['.png', '.svg']
    """

    def __init__(self, directory: str | Path, dpi: int = 120):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dpi = dpi
        self.plt = pyplot()
        self.written: list[Path] = []

    def save(self, fig, name: str) -> list[Path]:
        paths = []
        for ext in ("png", "svg"):
            path = self.directory / f"{name}.{ext}"
            fig.savefig(path, dpi=self.dpi, bbox_inches="tight")
            paths.append(path)
        self.plt.close(fig)
        self.written.extend(paths)
        return paths

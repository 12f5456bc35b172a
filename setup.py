"""Build configuration that pyproject.toml cannot express: segdata's two C extensions.

Both are optional: where they cannot be compiled the install goes on and segdata takes its
pure-Python paths instead (slower, same results; the tests compare them).

- ``segdata._png``: PNG row unfiltering; without it PNGs are decoded with pyspng or Pillow.
- ``segdata._runs``: the per-image kernel of the consistency analysis (runs, boundary band,
  segment-pair table and breakdown in one sweep); without it numpy computes the same tables.
  Built from the files of ``segdata/_runs-c/`` (``runs.h`` says which layer each holds).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("segdata._png", ["segdata/_png.c"], optional=True),
        Extension(
            "segdata._runs",
            [f"segdata/_runs-c/{name}.c" for name in ("module", "edges", "scan", "stream", "breakdown")],
            depends=["segdata/_runs-c/runs.h"],  # rebuilt when it changes, and packed into the sdist
            optional=True,
        ),
    ]
)

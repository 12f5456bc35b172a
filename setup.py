"""Build configuration that pyproject.toml cannot express: segdata's two C extensions.

Both are optional: where they cannot be compiled the install goes on and segdata takes its
pure-Python paths instead (slower, same results; the tests compare them).

- ``segdata._png``: PNG row unfiltering; without it PNGs are decoded with pyspng or Pillow.
- ``segdata._runs``: joint runs and boundary-band counts of segment maps for the consistency
  analysis; without it numpy computes them.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("segdata._png", ["segdata/_png.c"], optional=True),
        Extension("segdata._runs", ["segdata/_runs.c"], optional=True),
    ]
)

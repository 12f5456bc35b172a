"""Build configuration that pyproject.toml cannot express: segdata's one C extension.

``segdata._png`` (PNG row unfiltering) is optional: where it cannot be compiled the install goes
on and segdata decodes PNGs with pyspng or Pillow instead (slower, same results).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("segdata._png", ["segdata/_png.c"], optional=True)])

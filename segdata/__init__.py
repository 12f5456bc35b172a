"""segdata: read segmentation datasets as they ship, normalise them, measure their labels.

>>> import segdata
>>> ds = segdata.open("ade-unified")          # doctest: +SKIP
>>> ds.classes, ds.images, ds.segments        # pandas DataFrames  # doctest: +SKIP
>>> ds.semantic("ADE_train_00016869")         # (H, W) class ids   # doctest: +SKIP
"""

__version__ = "0.1.0"

from .errors import (
    FormatError,
    InputError,
    LayoutNotFoundError,
    OutputExistsError,
    SegdataError,
    SelectionError,
)
from .format import Dataset, ImageRecord
from .format import open_dataset as open

__all__ = [
    "Dataset",
    "ImageRecord",
    "open",
    "SegdataError",
    "InputError",
    "LayoutNotFoundError",
    "OutputExistsError",
    "FormatError",
    "SelectionError",
    "__version__",
]

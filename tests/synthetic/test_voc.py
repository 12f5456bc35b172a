"""Synthetic PASCAL VOC generator: palette PNGs through the shared writer, the same files whatever the workers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from segdata.synthetic.voc import VOID, generate_voc


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_palette_pngs_with_void_borders(tmp_path):
    base = generate_voc(tmp_path, 4, size=(40, 50), seed=2)
    names = (base / "ImageSets/Segmentation/trainval.txt").read_text().split()
    assert names == [f"2007_{i:06d}" for i in range(4)]
    for name in names:
        with Image.open(base / "SegmentationClass" / f"{name}.png") as im:
            assert im.mode == "P" and im.size == (50, 40)
            assert im.getpalette()[3:6] == [128, 0, 0]  # the devkit colour of class 1 (aeroplane)
            classes = np.asarray(im)
        with Image.open(base / "SegmentationObject" / f"{name}.png") as im:
            objects = np.asarray(im)
        assert set(np.unique(classes)) <= set(range(21)) | {VOID}
        assert ((classes == VOID) == (objects == VOID)).all() and (classes == VOID).any()
        assert ((classes == 0) == (objects == 0)).all()


def test_same_files_whatever_the_workers(tmp_path):
    one = generate_voc(tmp_path / "a", 10, size=(30, 40), seed=5, workers=1)
    two = generate_voc(tmp_path / "b", 10, size=(30, 40), seed=5, workers=2)
    other = generate_voc(tmp_path / "c", 10, size=(30, 40), seed=6, workers=1)
    hashes = file_hashes(one)
    assert len(hashes) == 3 * 10 + 3 and hashes == file_hashes(two)
    assert hashes != file_hashes(other)

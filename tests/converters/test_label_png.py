"""Label-PNG export (mmsegmentation / detectron2 layout) and its reading back.

Expected label values are computed here from the VOC fixture arrays with numpy; exported PNGs
are decoded with Pillow, never through segdata's readers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import segdata
from segdata.convert import convert, partial_path
from segdata.converters import label_png, voc
from segdata.errors import InputError, LayoutNotFoundError, OutputExistsError
from segdata.format import CLASS_SCHEMA
from segdata.validate import validate
from segdata.vocab import VocabEntry, Vocabulary, read_vocab, write_vocab
from tests.fixtures.voc import VOC_NAMES, sbd_images, small_voc, voc_images, write_sbd


@pytest.fixture(scope="module")
def unified(tmp_path_factory):
    """The small VOC tree (with SBD as layer ``sbd``) converted once for the module."""
    base = tmp_path_factory.mktemp("lp")
    small_voc(base / "src")
    sbd = write_sbd(base / "sbd")
    convert(voc, base / "src", base / "u", workers=1, options={"sbd": sbd})
    return segdata.open(base / "u")


def read_labels(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


# --------------------------------------------------------------------------- export


def test_default_vocab_export_reproduces_voc_indices(unified, tmp_path):
    """Default vocabulary: every non-ignore class in class_id order, so the label PNG of a VOC
    image is its SegmentationClass indices exactly (background 0, classes 1..20, void 255)."""
    out = tmp_path / "lp"
    result = label_png.write(unified, out, workers=1)
    assert result["num_classes"] == 21 and result["splits"] == {"train": 2, "val": 1}
    vocab = read_vocab(out / "vocab.json")
    assert vocab.names == VOC_NAMES
    assert [e.class_ids for e in vocab.entries] == [(i + 1,) for i in range(21)]
    expected_counts = np.zeros(256, np.int64)
    for image_id, (cls, _) in voc_images().items():
        split = "val" if image_id == "2007_000039" else "train"
        labels = read_labels(out / "ann_dir" / split / f"{image_id}.png")
        assert np.array_equal(labels, cls)
        expected_counts += np.bincount(cls.ravel(), minlength=256)
    assert result["pixels_per_train_id"] == expected_counts[:21].tolist()
    assert result["ignored_pixels"] == int(expected_counts[255])
    assert (out / "splits" / "train.txt").read_text() == "2007_000032\n2007_000063\n"
    assert (out / "splits" / "val.txt").read_text() == "2007_000039\n"
    link = out / "img_dir" / "train" / "2007_000032.jpg"
    assert link.is_symlink() and os.readlink(link).endswith("JPEGImages/2007_000032.jpg")
    provenance = json.loads((out / "export.json").read_text())
    assert provenance["layer"] == "objects" and provenance["source"]["family"] == "voc"


def test_custom_vocab_merges_and_drops(unified, tmp_path):
    """cat (VOC 8, class 9) and dog (VOC 12, class 13) merge into 'pet'; aeroplane and every
    class not listed drop to 255, as void and unlabeled do."""
    vocab_file = write_vocab(
        tmp_path / "v.json",
        [
            {"train_id": 0, "name": "background", "class_ids": [1]},
            {"train_id": 1, "name": "pet", "class_ids": [13, 9], "color": "#aa5500"},
            {"train_id": 2, "name": "person", "class_ids": [16]},
        ],
    )
    out = tmp_path / "lp"
    result = label_png.write(unified.path, out, vocab=vocab_file, images="none", workers=2)
    assert result["num_classes"] == 3
    mapping = np.full(256, 255, np.uint8)
    mapping[[0, 8, 12, 15]] = [0, 1, 1, 2]  # VOC index -> expected label
    for image_id, (cls, _) in voc_images().items():
        split = "val" if image_id == "2007_000039" else "train"
        labels = read_labels(out / "ann_dir" / split / f"{image_id}.png")
        assert np.array_equal(labels, mapping[cls]), image_id
    a = read_labels(out / "ann_dir" / "train" / "2007_000063.png")
    assert a.tolist() == [[1, 1, 1, 1, 0]] * 4  # dog and cat both 'pet'
    assert not (out / "img_dir").exists() and result["missing_images"] == []
    assert read_vocab(out / "vocab.json") == Vocabulary(read_vocab(vocab_file).entries, str(out / "vocab.json"))


def test_other_layer_and_images_without_it(unified, tmp_path):
    out = tmp_path / "lp"
    label_png.write(unified, out, layer="sbd", images="copy", workers=1)
    labels = read_labels(out / "ann_dir" / "train" / "2007_000032.png")
    assert np.array_equal(labels, sbd_images()["2007_000032"][0])
    assert (read_labels(out / "ann_dir" / "train" / "2007_000063.png") == 255).all()  # not in SBD
    copied = out / "img_dir" / "val" / "2007_000039.jpg"
    assert copied.is_file() and not copied.is_symlink()


def test_missing_images_are_listed(tmp_path):
    root = small_voc(tmp_path / "src")
    (root / "JPEGImages" / "2007_000063.jpg").unlink()
    convert(voc, root, tmp_path / "u", workers=1)
    result = label_png.write(tmp_path / "u", tmp_path / "lp", workers=1)
    assert result["missing_images"] == ["2007_000063"]
    assert (tmp_path / "lp" / "ann_dir" / "train" / "2007_000063.png").is_file()


def test_output_exists_and_failure_leaves_nothing(unified, tmp_path):
    out = tmp_path / "lp"
    label_png.write(unified, out, workers=1)
    with pytest.raises(OutputExistsError):
        label_png.write(unified, out, workers=1)
    label_png.write(unified, out, workers=1, overwrite=True)
    with pytest.raises(segdata.SegdataError, match="no layer 'parts-1'"):
        label_png.write(unified, tmp_path / "x", layer="parts-1")
    bad = write_vocab(tmp_path / "bad.json", [{"train_id": 0, "name": "void", "class_ids": [255]}])
    with pytest.raises(InputError, match="flagged ignore"):
        label_png.write(unified, tmp_path / "x", vocab=bad)
    assert not (tmp_path / "x").exists() and not partial_path(tmp_path / "x").exists()


def test_corrupt_mask_fails_cleanly(tmp_path):
    small_voc(tmp_path / "src")
    convert(voc, tmp_path / "src", tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    ds.mask_path("2007_000039").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "lp"
    with pytest.raises(InputError) as exc:
        label_png.write(ds, out, workers=1)
    assert exc.value.path.endswith("2007_000039.png")
    assert not out.exists() and not partial_path(out).exists()


# --------------------------------------------------------------------------- the 255-class cap
# (vocabulary files themselves are tested in tests/test_vocab.py: they hold any number of classes)


def _many_classes_dataset(tmp_path, n: int):
    """A one-image unified dataset whose class table has ``n`` classes (copied from the VOC one
    with the class table replaced: the exporter reads the table, not the source)."""
    small_voc(tmp_path / "src")
    convert(voc, tmp_path / "src", tmp_path / "u", workers=1)
    classes = pd.DataFrame(
        {
            "class_id": pd.array(range(1, n + 1), dtype="int32"),
            "name": [f"c{i}" for i in range(1, n + 1)],
            "source_id": pd.array(range(1, n + 1), dtype="int64"),
            "source_name": [f"c{i}" for i in range(1, n + 1)],
            "is_thing": pd.array([None] * n, dtype="boolean"),
            "ignore": False,
            "train_id": pd.array([None] * n, dtype="Int32"),
            "color": "#000000",
        }
    )
    pq.write_table(
        pa.Table.from_pandas(classes, schema=CLASS_SCHEMA, preserve_index=False), tmp_path / "u" / "classes.parquet"
    )
    return segdata.open(tmp_path / "u")


def test_label_png_refuses_more_than_255_classes(tmp_path):
    """The cap is the exporter's: a 300-class default vocabulary or a 256-entry vocabulary file
    is refused with a hint to build a smaller one; the vocabulary itself is valid."""
    ds = _many_classes_dataset(tmp_path, 300)
    assert Vocabulary.default(ds.classes).num_classes == 300  # the vocabulary holds them
    with pytest.raises(InputError, match=r"300 classes; a label PNG holds at most 255") as exc:
        label_png.write(ds, tmp_path / "x", workers=1)
    assert "segdata vocab DATASET --top 150" in str(exc.value)
    assert exc.value.path == str(ds.path / "classes.parquet")
    big = write_vocab(
        tmp_path / "big.json", [{"train_id": i, "name": f"c{i}", "class_ids": [i + 1]} for i in range(256)]
    )
    with pytest.raises(InputError, match="256 classes; a label PNG holds at most 255") as exc:
        label_png.write(ds, tmp_path / "x", vocab=big, workers=1)
    assert exc.value.path == str(big)
    assert not (tmp_path / "x").exists() and not partial_path(tmp_path / "x").exists()


def test_label_png_writes_ignore_255_whatever_the_vocabulary_says(unified, tmp_path):
    """A vocabulary with ignore_index -1 exports as 255 (the label PNG's ignore) and the written
    vocab.json says 255; reading a label-PNG directory with a 256-class vocabulary fails."""
    vocab = Vocabulary((VocabEntry(0, "background", (1,)), VocabEntry(1, "person", (16,))), ignore_index=-1)
    out = tmp_path / "lp"
    label_png.write(unified, out, vocab=vocab, images="none", workers=1)
    assert json.loads((out / "vocab.json").read_text())["ignore_index"] == 255
    mapping = np.full(256, 255, np.uint8)
    mapping[[0, 15]] = [0, 1]  # VOC index -> expected label
    for image_id, (cls, _) in voc_images().items():
        split = "val" if image_id == "2007_000039" else "train"
        assert np.array_equal(read_labels(out / "ann_dir" / split / f"{image_id}.png"), mapping[cls]), image_id
    write_vocab(out / "vocab.json", [{"train_id": i, "name": f"c{i}", "class_ids": [i + 1]} for i in range(256)])
    with pytest.raises(InputError, match="256 classes; a label PNG holds at most 255"):
        label_png.detect(out)


# --------------------------------------------------------------------------- reading back, round trip


def _expected_labels(ds, image_id: str, vocab: Vocabulary, layer: str = "objects") -> np.ndarray:
    """Unified semantic map -> label values through the vocabulary, computed here."""
    mapping = {cid: e.train_id for e in vocab.entries for cid in e.class_ids}
    sem = ds.semantic(image_id, layer)
    out = np.full(sem.shape, 255, np.int64)
    for cid, tid in mapping.items():
        out[sem == cid] = tid
    return out


@pytest.mark.parametrize("custom", [False, True], ids=["default-vocab", "merged-vocab"])
def test_round_trip_voc_unified_label_png_unified(unified, tmp_path, custom):
    vocab = None
    if custom:
        vocab = Vocabulary(
            (VocabEntry(0, "background", (1,)), VocabEntry(1, "pet", (9, 13)), VocabEntry(2, "aeroplane", (2,)))
        )
    out = tmp_path / "lp"
    label_png.write(unified, out, vocab=vocab, workers=1)
    vocab = read_vocab(out / "vocab.json")
    report = convert(label_png, out, tmp_path / "back", workers=1)
    back = segdata.open(tmp_path / "back")
    assert report.problems == [] and back.manifest["source"]["layout"] == "label-png"
    assert list(back.images.image_id) == list(unified.images.image_id)
    assert list(back.images.split) == list(unified.images.split)
    assert (back.images[["width", "height"]].to_numpy() == unified.images[["width", "height"]].to_numpy()).all()
    classes = back.classes.set_index("class_id")
    assert list(classes.loc[[e.train_id + 1 for e in vocab.entries], "name"]) == vocab.names
    assert bool(classes.loc[256, "ignore"]) and classes.loc[256, "source_id"] == 255
    for image_id in unified.images.image_id:
        expected = _expected_labels(unified, image_id, vocab)
        assert np.array_equal(back.semantic(image_id) - 1, expected), image_id  # class_id = label + 1
    if not custom:  # VOC's class ids come back unchanged; void comes back as the ignore class
        for image_id in unified.images.image_id:
            a, b = unified.semantic(image_id), back.semantic(image_id)
            assert np.array_equal(a[a != 255], b[a != 255]) and (b[a == 255] == 256).all()
    assert validate(back.path, workers=1) == []
    # images come back through the exported links
    assert back.image_path("2007_000032").resolve() == unified.image_path("2007_000032").resolve()


def test_reading_back_bad_input(unified, tmp_path):
    out = tmp_path / "lp"
    label_png.write(unified, out, workers=1)
    with pytest.raises(LayoutNotFoundError, match="ann_dir"):
        label_png.detect(tmp_path)
    (out / "vocab.json").rename(tmp_path / "elsewhere.json")
    with pytest.raises(LayoutNotFoundError, match="no vocabulary"):
        label_png.detect(out)
    layout = label_png.detect(out, vocab=tmp_path / "elsewhere.json")
    assert layout.num_classes == 21
    png = out / "ann_dir" / "val" / "2007_000039.png"
    Image.fromarray(np.full((5, 6), 30, np.uint8)).save(png)
    with pytest.raises(InputError, match=r"label value\(s\) \[30\] are neither train ids") as exc:
        convert(label_png, out, tmp_path / "back", workers=1, options={"vocab": tmp_path / "elsewhere.json"})
    assert exc.value.path == str(png)
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(png)
    with pytest.raises(InputError, match="8-bit single-channel"):
        list(label_png.read(out, split="val", vocab=tmp_path / "elsewhere.json"))

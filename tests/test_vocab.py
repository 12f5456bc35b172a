"""segdata.vocab: vocabulary files, the default and train-id vocabularies, lookup tables.

Expected train ids come from tables written out here (the official Cityscapes trainIds of
cityscapesScripts' labels.py, SceneParsing's ``index - 1``, VOC's index) and from source PNGs
decoded with Pillow, never from the vocabulary under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import segdata
from segdata.convert import convert
from segdata.converters import ade20k, cityscapes, voc
from segdata.errors import InputError
from segdata.vocab import VocabEntry, Vocabulary, read_vocab, write_vocab
from tests.conftest import require
from tests.fixtures import cityscapes as cs_fx
from tests.fixtures.voc import small_voc

# cityscapesScripts labels.py: labelId -> trainId for the 19 evaluated classes; every other
# labelId (0..6, 9, 10, 14..16, 18, 29, 30) has trainId 255, license plate (-1) has -1
OFFICIAL_TRAIN_ID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
OFFICIAL_NAMES = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
]


def label_id_to_train_id() -> np.ndarray:
    """labelId 0..33 -> official trainId, 255 elsewhere (written out above, not read from segdata)."""
    table = np.full(34, 255, np.int64)
    for label_id, train_id in OFFICIAL_TRAIN_ID.items():
        table[label_id] = train_id
    return table


# --------------------------------------------------------------------------- files


def test_vocab_file_round_trip_and_format(tmp_path):
    vocab = Vocabulary((VocabEntry(1, "vehicle", (7, 8), "#ff0000"), VocabEntry(0, "road", (3,))))
    path = write_vocab(tmp_path / "v.json", vocab)
    lines = path.read_text().splitlines()
    assert lines[3] == ' "ignore_index": 255,'
    assert lines[5] == '  {"train_id": 0, "name": "road", "class_ids": [3]},'  # one class per line
    assert lines[6] == '  {"train_id": 1, "name": "vehicle", "class_ids": [7, 8], "color": "#ff0000"}'
    again = read_vocab(path)
    assert again.entries == vocab.entries and again.source == str(path)
    assert Vocabulary.from_file(path) == again and again.to_dict() == json.loads(path.read_text())
    minimal = tmp_path / "m.json"
    minimal.write_text('{"classes": [{"train_id": 0, "name": "a", "class_ids": [2]}]}')
    assert read_vocab(minimal).entries == (VocabEntry(0, "a", (2,)),)
    assert read_vocab(minimal).ignore_index == 255


def test_files_written_before_the_move_read_unchanged(tmp_path):
    """The exact text label_png.write_vocab wrote (ignore_index 255, no other options)."""
    path = tmp_path / "old.json"
    path.write_text(
        '{\n "format": "segdata-vocab",\n "format_version": 1,\n "ignore_index": 255,\n "classes": [\n'
        '  {"train_id": 0, "name": "tree", "class_ids": [2855], "color": "#1f77b4"},\n'
        '  {"train_id": 1, "name": "building", "class_ids": [312]}\n ]\n}\n'
    )
    vocab = read_vocab(path)
    assert vocab.names == ["tree", "building"] and vocab.ignore_index == 255
    lut = vocab.lookup(3000)
    assert lut[2855] == 0 and lut[312] == 1 and lut[0] == 255 and (np.delete(lut, [312, 2855]) == 255).all()
    copy = write_vocab(tmp_path / "again.json", vocab)
    assert copy.read_text() == path.read_text()


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "malformed JSON"),
        ("[]", 'expected a JSON object with a "classes" list'),
        ('{"classes": [{"train_id": 1, "name": "a", "class_ids": [2]}]}', r"train ids must be 0..0"),
        (
            '{"classes": [{"train_id": 0, "name": "a", "class_ids": [2]}, {"train_id": 1, "name": "b", "class_ids": [2]}]}',
            "class id 2 is in train id 0 and in train id 1",
        ),
        ('{"classes": [{"train_id": 0, "name": "a", "class_id": [2]}]}', r"unknown key\(s\) \['class_id'\]"),
        ('{"classes": [{"train_id": 0, "name": "a", "class_ids": [0]}]}', "0 is unlabeled"),
        ('{"classes": [{"train_id": 0, "name": "", "class_ids": [1]}]}', "non-empty string"),
        (
            '{"ignore_index": 0, "classes": [{"train_id": 0, "name": "a", "class_ids": [1]}]}',
            r"ignore_index 0 is a train id \(0..0\)",
        ),
        ('{"ignore_index": "255", "classes": []}', "not an integer in the int32 range"),
        ('{"classes": [{"train_id": 0, "name": "a", "class_ids": [1], "color": "red"}]}', "not #rrggbb"),
        (
            '{"ignore_index": 255, "classes": ['
            + ",".join(f'{{"train_id": {i}, "name": "c{i}", "class_ids": [{i + 1}]}}' for i in range(256))
            + "]}",
            r"ignore_index 255 is a train id \(0..255\)",
        ),
    ],
    ids=[
        "json",
        "not-object",
        "gap",
        "duplicate",
        "typo",
        "zero",
        "name",
        "ignore-is-train-id",
        "ignore-type",
        "color",
        "256-with-ignore-255",
    ],
)
def test_bad_vocab_file_names_the_file(tmp_path, text, message):
    path = tmp_path / "v.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as exc:
        read_vocab(path)
    assert exc.value.path == str(path)


def test_full_ade20k_size_round_trip(tmp_path):
    """3,688 classes (full ADE20K 2021): file -> object -> lookup. Train id t holds class
    3688 - t (ranks reversed), so the lookup must give 3688 - class_id for every class."""
    n = 3688
    entries = [{"train_id": t, "name": f"class {n - t}", "class_ids": [n - t]} for t in range(n)]
    path = write_vocab(tmp_path / "ade_full.json", entries)
    data = json.loads(path.read_text())
    assert len(data["classes"]) == n and data["ignore_index"] == 65535  # 255 is a train id here
    vocab = read_vocab(path)
    assert vocab.num_classes == n and vocab.names[0] == "class 3688" and vocab.names[-1] == "class 1"
    lut = vocab.lookup(n)
    assert lut.dtype == np.uint16 and lut.shape == (n + 1,)
    class_ids = np.arange(1, n + 1)
    assert np.array_equal(lut[1:], (n - class_ids).astype(np.uint16))
    assert lut[0] == 65535  # unlabeled
    assert lut[3433] == 255  # class 3433 is train id 255, a class, not the ignore value
    signed = vocab.with_ignore_index(-1).lookup(n)
    assert signed.dtype == np.int32 and signed[0] == -1 and np.array_equal(signed[1:], n - class_ids)
    # a semantic map through the lookup: every class once, plus unlabeled
    semantic = np.arange(n + 1).reshape(1, -1)
    assert np.array_equal(lut[semantic][0, 1:], n - class_ids)


# --------------------------------------------------------------------------- vocabularies of a class table


def test_default_vocab_against_a_class_table():
    classes = pd.DataFrame(
        {"class_id": [1, 2, 5], "name": ["a", "b", "void"], "ignore": [False, False, True], "color": ["#000000"] * 3}
    )
    default = Vocabulary.default(classes)
    assert [(e.train_id, e.class_ids) for e in default.entries] == [(0, (1,)), (1, (2,))]
    assert default.lookup(classes).tolist() == [255, 0, 1, 255, 255, 255]
    with pytest.raises(InputError, match="class id 9 is not in the dataset"):
        Vocabulary((VocabEntry(0, "x", (9,)),)).lookup(classes)
    with pytest.raises(InputError, match=r"class 5 \(void\) is flagged ignore"):
        Vocabulary((VocabEntry(0, "x", (5,)),)).lookup(classes)
    many = pd.DataFrame(
        {"class_id": range(1, 301), "name": [f"c{i}" for i in range(300)], "ignore": False, "color": "#000000"}
    )
    big = Vocabulary.default(many)  # no cap: the label-PNG export has one, the vocabulary none
    assert big.num_classes == 300 and big.ignore_index == 65535
    assert big.lookup(many).tolist() == [65535] + list(range(300))
    with pytest.raises(ValueError, match="uint8 cannot hold train ids 0..299"):
        big.lookup(many, dtype=np.uint8)


def test_from_train_ids_is_the_official_cityscapes_table():
    """Every Cityscapes class: the lookup of the train-id vocabulary is the official trainId,
    and equals classes.parquet's train_id (null -> 255)."""
    classes = cityscapes.class_table()
    vocab = Vocabulary.from_train_ids(classes)
    assert vocab.num_classes == 19 and vocab.names == OFFICIAL_NAMES and vocab.ignore_index == 255
    lut = vocab.lookup(classes)
    expected = label_id_to_train_id()
    for row in classes.itertuples():
        official = 255 if row.source_id < 0 else expected[row.source_id]  # license plate: no train id
        assert lut[row.class_id] == official, row.name
        assert lut[row.class_id] == (255 if pd.isna(row.train_id) else row.train_id), row.name
    assert lut[0] == 255


def test_from_train_ids_on_the_cityscapes_fixture(tmp_path):
    """Converted fixture: trainIds of every pixel, from the labelIds the fixture wrote (decoded
    with Pillow) and the official table, equal the vocabulary's lookup of the unified map."""
    root = cs_fx.small_dataset(tmp_path / "src")
    convert(cityscapes, root, tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    vocab = Vocabulary.from_train_ids(ds.classes)
    lut = vocab.lookup(ds.classes)
    official = label_id_to_train_id()
    for image_id, scene, split, city in [
        (cs_fx.A, cs_fx.scene_a(), "train", "aachen"),
        (cs_fx.B, cs_fx.scene_b(), "train", "aachen"),
        (cs_fx.V, cs_fx.scene_v(), "val", "frankfurt"),
    ]:
        label_ids = np.asarray(Image.open(root / "gtFine" / split / city / f"{image_id}_gtFine_labelIds.png")).astype(
            np.int64
        )
        assert np.array_equal(label_ids, cs_fx.labels_of(scene))
        assert np.array_equal(lut[ds.semantic(image_id)], official[label_ids]), image_id
    # scene A (6x8) by hand: sky 7 (10), building 8 (2), cars 6 + 4 + cargroup 3 (13), person 2 (11),
    # road 3 + 13 (0), out of roi 1 + unlabeled 1 (255): 48 pixels
    counts = np.bincount(lut[ds.semantic(cs_fx.A)].ravel(), minlength=256)
    assert (counts[10], counts[2], counts[13], counts[11], counts[0], counts[255]) == (7, 8, 13, 2, 16, 2)
    assert counts.sum() == 48


def test_from_train_ids_on_cityscapes_samples(samples, tmp_path):
    root = require(samples / "cityscapes")
    convert(cityscapes, root, tmp_path / "u", workers=2)
    ds = segdata.open(tmp_path / "u")
    lut = Vocabulary.from_train_ids(ds.classes).lookup(ds.classes)
    official = label_id_to_train_id()
    for row in ds.images.itertuples():
        city = row.image_id.split("_")[0]
        png = require(root / "gtFine" / row.split / city / f"{row.image_id}_gtFine_labelIds.png")
        label_ids = np.asarray(Image.open(png)).astype(np.int64)
        assert np.array_equal(lut[ds.semantic(row.image_id)], official[label_ids]), row.image_id


def test_from_train_ids_scene_parsing_and_voc(tmp_path):
    """SceneParsing: train id = PNG value - 1, 0 (other) -> 255, i.e. mmseg's reduce_zero_label.
    VOC: train id = the palette index, void -> 255."""
    from segdata.synthetic import generate_ade20k_challenge

    src = generate_ade20k_challenge(tmp_path / "ade", 4, image_size=((40, 60), (60, 80)), seed=2)
    convert(ade20k, src, tmp_path / "ade_u", workers=1)
    ds = segdata.open(tmp_path / "ade_u")
    vocab = Vocabulary.from_train_ids(ds.classes)
    assert vocab.num_classes == 150
    lut = vocab.lookup(ds.classes)
    for row in ds.images.itertuples():
        value = np.asarray(Image.open(src / row.annotation)).astype(np.int64)
        assert np.array_equal(lut[ds.semantic(row.image_id)], np.where(value == 0, 255, value - 1)), row.image_id

    convert(voc, small_voc(tmp_path / "voc"), tmp_path / "voc_u", workers=1)
    vds = segdata.open(tmp_path / "voc_u")
    vocab = Vocabulary.from_train_ids(vds.classes)
    assert vocab.names[0] == "background" and vocab.num_classes == 21
    assert vocab.lookup(vds.classes).tolist() == [255] + list(range(21)) + [255] * 233 + [255]  # class 255 = void


def test_from_train_ids_rules_and_errors():
    def table(train_ids, ignore=None):
        n = len(train_ids)
        return pd.DataFrame(
            {
                "class_id": range(1, n + 1),
                "name": [f"c{i}" for i in range(1, n + 1)],
                "ignore": ignore or [False] * n,
                "color": "#102030",
                "train_id": pd.array(train_ids, dtype="Int32"),
            }
        )

    merged = Vocabulary.from_train_ids(table([1, 0, 1, None, 255]))
    assert [(e.train_id, e.name, e.class_ids) for e in merged.entries] == [(0, "c2", (2,)), (1, "c1", (1, 3))]
    assert merged.lookup(5).tolist() == [255, 1, 0, 1, 255, 255]
    with pytest.raises(InputError, match="no class has a train_id") as exc:
        Vocabulary.from_train_ids(table([None, None]), source="x/classes.parquet")
    assert exc.value.path == "x/classes.parquet" and "segdata vocab" in str(exc.value)
    with pytest.raises(InputError, match=r"missing \[1\]"):
        Vocabulary.from_train_ids(table([0, 2]))
    with pytest.raises(InputError, match=r"class 2 \(c2\) is flagged ignore but has train_id 1"):
        Vocabulary.from_train_ids(table([0, 1], ignore=[False, True]))


def test_full_ade20k_has_no_train_ids(tmp_path):
    from tests.fixtures.ade20k import small_2021_dataset

    convert(ade20k, small_2021_dataset(tmp_path / "src"), tmp_path / "u", workers=1)
    ds = segdata.open(tmp_path / "u")
    with pytest.raises(InputError, match="no class has a train_id"):
        Vocabulary.from_train_ids(ds.classes)

"""segdata vocab: selection by pixel share, the file export --to label-png reads, the export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.analyses.longtail import class_frequencies
from segdata.analyses.vocabulary import build_vocabulary, select_vocabulary
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k, cityscapes
from segdata.vocab import Vocabulary, read_vocab
from tests.fixtures import cityscapes as cs_fx
from tests.fixtures.ade20k import small_2021_dataset

# pixels per class in the fixture (decoded by hand from tests/fixtures/ade20k.py):
# tree 28 (2 images), building 23, road 21, sky 14, car 12 (2 instances, 1 image)
EXPECTED_ORDER = [2855, 312, 2131, 2420, 401]
TOTAL = 98


@pytest.fixture()
def ds(tmp_path):
    convert(ade20k, small_2021_dataset(tmp_path / "src"), tmp_path / "u", workers=1)
    return segdata.open(tmp_path / "u")


def test_top_k_by_pixels(ds):
    kept = select_vocabulary(class_frequencies(ds), top=3)
    assert kept.class_id.tolist() == EXPECTED_ORDER[:3] and kept.train_id.tolist() == [0, 1, 2]
    assert kept.cumulative_share.iloc[-1] == pytest.approx(72 / TOTAL)


def test_coverage_and_min_images(ds):
    freq = class_frequencies(ds)
    assert select_vocabulary(freq, coverage=0.5).class_id.tolist() == [2855, 312]  # 51/98 >= 50%
    assert select_vocabulary(freq, coverage=0.85).class_id.tolist() == EXPECTED_ORDER[:4]  # 86/98
    assert select_vocabulary(freq, top=5, min_images=2).class_id.tolist() == [2855]
    with pytest.raises(ValueError, match="exactly one"):
        select_vocabulary(freq)


def test_cli_writes_a_vocabulary_that_export_uses(ds, tmp_path):
    vocab_file = tmp_path / "v.json"
    result = CliRunner().invoke(main, ["vocab", str(ds.path), "--top", "2", "-o", str(vocab_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pixel_coverage"] == pytest.approx(51 / TOTAL)
    assert [d["class_id"] for d in report["largest_dropped"]] == EXPECTED_ORDER[2:]
    vocab = read_vocab(vocab_file)
    assert vocab.names == ["tree", "building"]
    out = tmp_path / "lp"
    result = CliRunner().invoke(
        main, ["export", str(ds.path), "--to", "label-png", str(out), "--vocab", str(vocab_file), "--images", "none"]
    )
    assert result.exit_code == 0, result.output
    label = np.asarray(Image.open(next(out.rglob("ADE_train_00000001.png"))))
    semantic = ds.semantic("ADE_train_00000001")
    expected = np.full(semantic.shape, 255)
    expected[semantic == 2855] = 0
    expected[semantic == 312] = 1
    assert np.array_equal(label, expected)


def test_builder_returns_a_segdata_vocab_vocabulary(ds):
    vocab, report = build_vocabulary(ds, top=3)
    assert isinstance(vocab, Vocabulary) and vocab.ignore_index == 255
    assert [e.class_ids for e in vocab.entries] == [(c,) for c in EXPECTED_ORDER[:3]]
    assert report["pixel_coverage"] == pytest.approx(72 / TOTAL)
    with pytest.raises(ValueError, match="exactly one"):
        build_vocabulary(ds, top=3, from_train_ids=True)


@pytest.fixture()
def many(tmp_path):
    """A synthetic full-ADE20K dataset with more than 255 classes that have pixels."""
    from segdata.synthetic import generate_ade20k_2021

    root = generate_ade20k_2021(
        tmp_path / "syn", n_images=40, image_size=(48, 64), n_classes=600, zipf_exponent=0.3, parts=False, workers=1
    )
    convert(ade20k, root, tmp_path / "many", workers=2)
    return segdata.open(tmp_path / "many")


def test_cli_top_above_255_and_export_refuses_it(many, tmp_path):
    freq = class_frequencies(many)
    seen = freq[freq.pixels > 0].sort_values("rank")
    n = len(seen)
    assert n > 255
    vocab_file = tmp_path / "all.json"
    result = CliRunner().invoke(main, ["vocab", str(many.path), "--top", str(n), "-o", str(vocab_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pixel_coverage"] == pytest.approx(1.0)
    data = json.loads(vocab_file.read_text())
    assert data["ignore_index"] == 65535 and len(data["classes"]) == n
    vocab = read_vocab(vocab_file)
    lut = vocab.lookup(many.classes)
    assert lut.dtype == np.uint16 and lut[0] == 65535
    assert lut[seen.class_id.to_numpy()].tolist() == list(range(n))  # train id = pixel rank
    # a semantic map through the lookup: pixels per train id equal the class's pixels
    image_id = many.images.image_id.iloc[0]
    sem = many.semantic(image_id)
    train = lut[sem]
    for cid in np.unique(sem[sem > 0])[:20]:
        assert (train == lut[cid]).sum() == (sem == cid).sum()
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(many.path),
            "--to",
            "label-png",
            str(tmp_path / "lp"),
            "--vocab",
            str(vocab_file),
            "--images",
            "none",
        ],
    )
    assert result.exit_code == 1
    assert f"{n} classes; a label PNG holds at most 255" in result.output and "--top 150" in result.output
    assert not (tmp_path / "lp").exists()


def test_cli_from_train_ids_on_cityscapes(tmp_path):
    convert(cityscapes, cs_fx.small_dataset(tmp_path / "src"), tmp_path / "u", workers=1)
    out = tmp_path / "cs19.json"
    result = CliRunner().invoke(main, ["vocab", str(tmp_path / "u"), "--from-train-ids", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    vocab = read_vocab(out)
    assert vocab.num_classes == 19 and vocab.names[:3] == ["road", "sidewalk", "building"] and vocab.ignore_index == 255
    # labelId -> trainId, the official table: road 7 -> 0, car 26 -> 13, bicycle 33 -> 18 (class_id = labelId + 1)
    lut = vocab.lookup(34)
    assert (lut[8], lut[27], lut[34], lut[1], lut[4]) == (0, 13, 18, 255, 255)
    assert [d["train_id"] for d in report["vocabulary"]] == sorted(d["train_id"] for d in report["vocabulary"])
    assert report["pixel_coverage"] == pytest.approx(1.0)  # every non-ignored class has a trainId
    result = CliRunner().invoke(
        main,
        [
            "export",
            str(tmp_path / "u"),
            "--to",
            "label-png",
            str(tmp_path / "lp"),
            "--vocab",
            str(out),
            "--images",
            "none",
        ],
    )
    assert result.exit_code == 0, result.output
    labels = np.asarray(Image.open(tmp_path / "lp" / "ann_dir" / "train" / f"{cs_fx.A}.png"))
    label_ids = cs_fx.labels_of(cs_fx.scene_a())
    expected = np.full(label_ids.shape, 255)
    for label_id, train_id in {7: 0, 11: 2, 23: 10, 24: 11, 26: 13}.items():
        expected[label_ids == label_id] = train_id
    assert np.array_equal(labels, expected)


def test_cli_vocab_usage_errors(ds, tmp_path):
    out = str(tmp_path / "v.json")
    for args in ([], ["--top", "2", "--from-train-ids"], ["--top", "2", "--coverage", "0.5"]):
        result = CliRunner().invoke(main, ["vocab", str(ds.path), "-o", out, *args])
        assert result.exit_code == 2 and "exactly one of --top, --coverage or --from-train-ids" in result.output
    result = CliRunner().invoke(main, ["vocab", str(ds.path), "--from-train-ids", "--min-images", "2", "-o", out])
    assert result.exit_code == 2 and "--min-images applies to --top and --coverage only" in result.output
    result = CliRunner().invoke(main, ["vocab", str(ds.path), "--from-train-ids", "-o", out])
    assert result.exit_code == 1 and "no class has a train_id" in result.output
    assert not (tmp_path / "v.json").exists()

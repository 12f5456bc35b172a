"""segdata vocab: selection by pixel share, the file export --to label-png reads, the export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import segdata
from segdata.analyses.longtail import class_frequencies
from segdata.analyses.vocabulary import select_vocabulary
from segdata.cli import main
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.converters.label_png import read_vocab
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
    result = CliRunner().invoke(main, ["export", str(ds.path), "--to", "label-png", str(out), "--vocab", str(vocab_file),
                                       "--images", "none"])  # fmt: skip
    assert result.exit_code == 0, result.output
    label = np.asarray(Image.open(next(out.rglob("ADE_train_00000001.png"))))
    semantic = ds.semantic("ADE_train_00000001")
    expected = np.full(semantic.shape, 255)
    expected[semantic == 2855] = 0
    expected[semantic == 312] = 1
    assert np.array_equal(label, expected)

"""The learnable synthetic ADE20K set (segdata.synthetic.ade20k.synthesize_ade20k, appearance="learnable"): the files
are decoded here independently (Pillow + numpy), and every figure is computed here from the pixels, never taken from
the generator: it converts and validates, its classes follow a power law, its class colours are separable (a
nearest-mean-colour classifier fitted on the training split labels the validation split), its objects come in every
COCO size, it is deterministic, and its simulated re-annotation agrees with the original on about 82.4 % of pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from segdata.synthetic import ade20k as syn

DIR = "ADE20K_2021_17_01"


def decode_seg(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(class code map, B map) of an ADE full-dataset label PNG."""
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB")).astype(np.int64)
    return (a[..., 0] // 10) * 256 + a[..., 1], a[..., 2]


def split_files(release: Path, split: str) -> list[tuple[Path, Path]]:
    """(jpg, seg png) pairs of a split folder, in stem order."""
    segs = sorted((release / "images" / "ADE" / split).rglob("*_seg.png"), key=lambda p: p.name)
    return [(p.with_name(p.name[: -len("_seg.png")] + ".jpg"), p) for p in segs]


@pytest.fixture(scope="module")
def learnable(tmp_path_factory) -> Path:
    """The default set: 300 images of 256x256, 40 classes, seed 0."""
    out = tmp_path_factory.mktemp("learnable") / "synth"
    result = syn.synthesize_ade20k(out, workers=2)
    assert result.path == out and result.release == out / DIR
    return out


@pytest.fixture(scope="module")
def labels(learnable) -> dict[str, list[np.ndarray]]:
    rel = learnable / DIR
    return {s: [decode_seg(seg)[0] for _, seg in split_files(rel, s)] for s in ("training", "validation")}


def test_layout_and_splits(learnable):
    rel = learnable / DIR
    assert sorted(p.name for p in learnable.iterdir()) == [DIR]
    train, val = split_files(rel, "training"), split_files(rel, "validation")
    assert len(train) == 240 and len(val) == 60
    assert train[0][1].name == "ADE_train_00000001_seg.png" and val[-1][1].name == "ADE_val_00000060_seg.png"
    for jpg, seg in train[:5] + val[:5]:
        with Image.open(jpg) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (256, 256)
        doc = json.loads(seg.with_name(jpg.stem + ".json").read_text())["annotation"]
        assert doc["imsize"] == [256, 256, 3] and doc["filename"] == jpg.name
    assert not list(learnable.parent.glob("*.segdata-partial"))


def test_converts_with_the_cli_and_validates(learnable, tmp_path):
    from segdata.cli import main
    from segdata.format import Dataset
    from segdata.validate import validate

    unified = tmp_path / "unified"
    result = CliRunner().invoke(main, ["convert", "ade20k", str(learnable), "--to", "unified", str(unified)])
    assert result.exit_code == 0, result.output
    assert validate(unified) == []
    images = Dataset(unified).images
    splits = images["split"].value_counts().to_dict()
    assert splits == {"train": 240, "val": 60}


def test_class_frequencies_follow_a_power_law(labels):
    vocab = [code for code, _, _ in syn.class_vocabulary(40, 0)]
    train = [set(np.unique(y).tolist()) for y in labels["training"]]
    counts = np.array([sum(code in s for s in train) for code in vocab])  # training images per class, by rank
    assert counts.min() >= 1  # every class is in at least one training image
    assert counts.max() > 100  # frequent classes
    assert (counts <= 10).sum() >= 5  # a long tail of rare classes (LVIS: 1..10 training images)
    ordered = np.sort(counts)[::-1]
    slope = np.polyfit(np.log(np.arange(1, 41)), np.log(ordered), 1)[0]
    assert slope < -1.0, slope
    # the frequency rank of the vocabulary is the rank of the data: the first 5 classes beat the last 20
    assert counts[:5].min() > counts[20:].max()
    val = [set(np.unique(y).tolist()) for y in labels["validation"]]
    assert all(any(code in s for s in val) for code in vocab)  # 60 validation images cover the 40 classes


def test_nearest_mean_colour_classifier_labels_validation_pixels(learnable, labels):
    """The 'learnable' evidence: per-class mean RGB from the training split, each validation pixel given the class of
    the nearest mean; most labelled pixels, and most of each class's pixels on average, come out right."""
    rel = learnable / DIR
    n = 4096
    sums, counts = np.zeros((n, 3)), np.zeros(n)
    for (jpg, _), y in zip(split_files(rel, "training"), labels["training"]):
        rgb = np.asarray(Image.open(jpg)).reshape(-1, 3).astype(np.float64)
        flat = y.ravel()
        counts += np.bincount(flat, minlength=n)
        for ch in range(3):
            sums[:, ch] += np.bincount(flat, weights=rgb[:, ch], minlength=n)
    codes = np.flatnonzero(counts[1:]) + 1
    means = sums[codes] / counts[codes, None]
    right = np.zeros(n)
    seen = np.zeros(n)
    for (jpg, _), y in zip(split_files(rel, "validation"), labels["validation"]):
        rgb = np.asarray(Image.open(jpg)).reshape(-1, 3).astype(np.float64)
        flat = y.ravel()
        lab = flat > 0
        x = rgb[lab]
        d = (means**2).sum(1)[None, :] - 2 * x @ means.T  # squared distance up to |x|^2
        pred = codes[d.argmin(1)]
        truth = flat[lab]
        right += np.bincount(truth[pred == truth], minlength=n)
        seen += np.bincount(truth, minlength=n)
    total = seen.sum()
    assert total > 0.5 * 60 * 256 * 256
    accuracy = right.sum() / total
    assert accuracy >= 0.75, accuracy
    present = seen > 0
    assert np.mean(right[present] / seen[present]) >= 0.6
    assert accuracy > seen.max() / total + 0.3  # far above predicting the most frequent class everywhere


def test_objects_of_every_coco_size(learnable):
    """Visible area of every level-0 object (one (class, B) pair of the seg PNG): COCO small (< 32^2), medium and
    large (> 96^2) all present, tiny objects too; and objects overlap (a filled polygon larger than what is seen)."""
    rel = learnable / DIR
    areas = []
    hidden = objects = 0
    for i, (jpg, seg) in enumerate(split_files(rel, "training")):
        code, b = decode_seg(seg)
        key = (code * 256 + b)[code > 0]
        areas.extend(np.bincount(key)[np.unique(key)].tolist())
        if i < 10:
            doc = json.loads(seg.with_name(jpg.stem + ".json").read_text())["annotation"]
            for o in doc["object"]:
                canvas = Image.new("L", (256, 256), 0)
                ImageDraw.Draw(canvas).polygon(list(zip(o["polygon"]["x"], o["polygon"]["y"])), fill=1)
                amodal = int(np.asarray(canvas).sum())
                visible = int((code == o["name_ndx"]).sum())
                objects += 1
                hidden += amodal > visible
    areas = np.array(areas)
    assert (areas < 32**2).sum() > 0 and ((areas >= 32**2) & (areas <= 96**2)).sum() > 0 and (areas > 96**2).sum() > 0
    assert (areas < 100).sum() > 0  # a few pixels
    assert (areas < 32**2).mean() > 0.2  # small objects are common, as in ADE20K
    assert hidden > 0.1 * objects  # objects overlap


def test_class_colours_are_distinct():
    looks = syn.class_appearances(40, 0)
    assert [a.code for a in looks] == [c for c, _, _ in syn.class_vocabulary(40, 0)]
    colours = np.array([a.colour for a in looks])
    d = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    assert d[np.triu_indices(40, 1)].min() > 25
    assert {a.texture for a in looks} == set(syn.appearance.TEXTURES)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    kw = {"n_classes": 12, "image_size": (48, 64), "n_consistency": 3}
    a = syn.synthesize_ade20k(tmp_path / "a", 10, seed=3, workers=1, **kw)
    b = syn.synthesize_ade20k(tmp_path / "b", 10, seed=3, workers=2, **kw)
    c = syn.synthesize_ade20k(tmp_path / "c", 10, seed=4, workers=1, **kw)
    ta, tb, tc = tree_bytes(a.path), tree_bytes(b.path), tree_bytes(c.path)
    assert len(ta) > 40 and ta == tb
    assert ta.keys() != tc.keys() or ta != tc
    assert a.consistency.images == b.consistency.images


def test_plain_appearance_is_unchanged_by_default(tmp_path):
    """The learnable appearance is opt-in: the default generator writes what it wrote before (same files as
    appearance="plain"), and the learnable photo differs from the plain one over the same label maps."""
    kw = {"image_size": (40, 56), "n_classes": 30, "seed": 1}
    default = syn.generate_ade20k_2021(tmp_path / "d", 4, **kw)
    plain = syn.generate_ade20k_2021(tmp_path / "p", 4, appearance="plain", **kw)
    learn = syn.generate_ade20k_2021(tmp_path / "l", 4, appearance="learnable", **kw)
    assert tree_bytes(default) == tree_bytes(plain)
    with pytest.raises(ValueError, match="appearance"):
        syn.generate_ade20k_2021(tmp_path / "x", 1, appearance="photo", **kw)
    jd = tree_bytes(default)["images/ADE/training/" + next(iter(_stems(default)))]
    jl = tree_bytes(learn)["images/ADE/training/" + next(iter(_stems(learn)))]
    assert jd != jl


def _stems(release: Path) -> list[str]:
    base = release / "images" / "ADE" / "training"
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.jpg"))


def test_reannotation_agreement_is_calibrated_on_ade20k(tmp_path):
    """82.4 % in the ADE20K study: the pixel agreement counted here from the two label maps, and the one
    `segdata analyze consistency` measures on the converted set, lie within 0.78..0.87; the originals are the
    training images of the same stems (same JPEG bytes, same label maps)."""
    from segdata.cli import main

    result = syn.synthesize_ade20k(tmp_path / "s", 60, n_consistency=24, seed=5, workers=2)
    cons = result.consistency
    assert cons.path == tmp_path / "s" / "ADE20K_2017_05_30_consistency" and cons.path.is_dir()
    train = {seg.name: (jpg, seg) for jpg, seg in split_files(result.release, "training")}
    same = either = 0
    for rec in cons.images:
        a, _ = decode_seg(cons.original_dir / f"{rec.stem}_seg.png")
        b, _ = decode_seg(cons.reannotation_dir / f"{rec.stem}_seg.png")
        jpg, seg = train[f"{rec.stem}_seg.png"]
        assert np.array_equal(a, decode_seg(seg)[0])
        assert (cons.original_dir / f"{rec.stem}.jpg").read_bytes() == jpg.read_bytes()
        assert (cons.reannotation_dir / f"{rec.stem}.jpg").read_bytes() == jpg.read_bytes()
        lab = (a > 0) | (b > 0)
        same += int(((a == b) & lab).sum())
        either += int(lab.sum())
    agreement = same / either
    assert 0.78 <= agreement <= 0.87, agreement
    unified = tmp_path / "cu"
    run = CliRunner().invoke(main, ["convert", "ade20k", str(cons.path), str(unified)])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(
        main, ["analyze", "consistency", str(unified), "--layers", "objects,reannotation", "--json"]
    )
    assert run.exit_code == 0, run.output
    measured = json.loads(run.output)["pixel_agreement"]
    assert 0.78 <= measured <= 0.87 and abs(measured - agreement) < 1e-9


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="n_consistency"):
        syn.synthesize_ade20k(tmp_path / "x", 10, n_consistency=9)
    with pytest.raises(ValueError, match="image size"):
        syn.synthesize_ade20k(tmp_path / "x", 10, image_size=(8, 8))
    with pytest.raises(ValueError, match="n_images"):
        syn.synthesize_ade20k(tmp_path / "x", 1)
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())

"""The notebooks of ``examples/``: each runs as a plain script, and as a real Jupyter notebook
(converted by jupytext, executed cell by cell by nbclient in an ipykernel of this interpreter).

The script runs write into a temporary folder (``SEGDATA_EXAMPLE_OUT``); the checks recompute
their key figures from the files written (masks, tables, PNGs) without the example's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ["choose_vocabulary.py", "ceiling_per_bucket.py", "convert_for_training.py", "train_repeat_factor.py"]
TIMEOUT = 600  # seconds per run; each example takes well under a minute on 2 idle cores (minutes on a loaded machine)


def _env(out: Path, notebook: bool = False) -> dict:
    env = dict(os.environ, SEGDATA_EXAMPLE_OUT=str(out))
    env.pop("MPLBACKEND", None)
    if not notebook:  # a script draws off screen; a notebook's kernel picks its inline backend
        env["MPLBACKEND"] = "Agg"
    return env


def run_script(name: str, out: Path) -> str:
    """Run ``examples/name`` as a script (cwd: a scratch folder); return its stdout."""
    cwd = out.parent / f"{out.name}-cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env=_env(out),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert not any(cwd.iterdir()), f"{name} wrote into the working directory: {sorted(cwd.iterdir())}"
    return proc.stdout


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernelspec that starts an ipykernel of this very interpreter (whatever kernels the
    machine has installed), in a folder of its own."""
    pytest.importorskip("ipykernel")
    folder = tmp_path_factory.mktemp("kernels")
    spec = folder / "segdata-examples"
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "segdata examples", "language": "python"})
    )
    return folder


def run_notebook(name: str, out: Path, kernel_dir: Path):
    """Convert ``examples/name`` to a notebook and execute it; return the executed notebook.
    nbclient raises CellExecutionError naming the cell when one raises."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = jupytext.read(EXAMPLES / name)
    cwd = out.parent / f"{out.name}-cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    km = KernelManager(
        kernel_name="segdata-examples", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    )
    client = nbclient.NotebookClient(
        nb, km=km, timeout=TIMEOUT, kernel_name="segdata-examples", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=_env(out, notebook=True))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name}: no code cell"
    for i, cell in enumerate(code):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}, code cell {i}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        assert cell.get("execution_count") is not None, f"{name}, code cell {i} did not run"
    assert not any(cwd.iterdir()), f"{name} wrote into the working directory"
    return nb


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append(o.get("text", ""))
            elif "data" in o:
                parts.append(o["data"].get("text/plain", ""))
    return "\n".join(parts)


def test_every_example_is_listed_and_in_percent_format():
    found = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "ade20k_tour.py")
    assert found == sorted(NOTEBOOKS)
    readme = (EXAMPLES / "README.md").read_text()
    for name in NOTEBOOKS:
        text = (EXAMPLES / name).read_text()
        assert text.count("# %% [markdown]") >= 3, name
        assert name in readme, name


# --------------------------------------------------------------------------- choose_vocabulary


def _train_class_pixels(ds) -> pd.Series:
    """Pixels per unified class over the training split, counted from the masks."""
    counts: dict[int, int] = {}
    for record in ds:
        if record.split != "train":
            continue
        ids, n = np.unique(record.semantic(), return_counts=True)
        for c, k in zip(ids.tolist(), n.tolist()):
            counts[c] = counts.get(c, 0) + k
    ignore = set(ds.classes.loc[ds.classes["ignore"].fillna(False).astype(bool), "class_id"])
    return pd.Series({c: k for c, k in counts.items() if c != 0 and c not in ignore}, dtype=np.int64)


def check_choose_vocabulary(out: Path):
    import segdata

    ds = segdata.open(out / "ade-full")
    pixels = _train_class_pixels(ds)
    ranked = pixels.sort_index().sort_values(ascending=False, kind="stable")  # ties: smaller class_id first
    share = ranked.cumsum() / ranked.sum()
    k = int(np.argmax(share.to_numpy() >= 0.95 - 1e-12)) + 1  # the fewest classes reaching 95%
    expected_ids = ranked.index[:k].tolist()

    vocab = json.loads((out / "vocab.json").read_text())
    kept = [c for e in sorted(vocab["classes"], key=lambda e: e["train_id"]) for c in e["class_ids"]]
    assert kept == expected_ids
    coverage = pixels[kept].sum() / pixels.sum()
    assert coverage >= 0.95
    assert pixels[kept[:-1]].sum() / pixels.sum() < 0.95  # and it is the smallest such vocabulary

    # the exported label PNGs: train id = rank among the kept classes, 255 elsewhere
    lut = np.full(int(ds.classes["class_id"].max()) + 1, 255, np.uint8)
    lut[expected_ids] = np.arange(k)
    for record in list(ds)[:: max(1, len(ds) // 5)]:
        label = np.asarray(Image.open(out / "ade-top" / "ann_dir" / record.split / f"{record.image_id}.png"))
        assert label.dtype == np.uint8
        np.testing.assert_array_equal(label, lut[record.semantic()])


def test_choose_vocabulary_script(tmp_path):
    stdout = run_script("choose_vocabulary.py", tmp_path / "out")
    check_choose_vocabulary(tmp_path / "out")
    for fraction in ("90.00%", "95.00%", "99.00%"):
        assert f"{fraction} of pixels: top" in stdout


def test_choose_vocabulary_notebook(tmp_path, kernel_dir):
    nb = run_notebook("choose_vocabulary.py", tmp_path / "out", kernel_dir)
    check_choose_vocabulary(tmp_path / "out")
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])), "no plot shown"


# --------------------------------------------------------------------------- ceiling_per_bucket


def check_ceiling_per_bucket(out: Path):
    import segdata

    ds = segdata.open(out / "ade")
    table = pd.read_csv(out / "buckets.csv", index_col="bucket")
    assert list(table.index) == ["rare", "common", "frequent"]
    # the buckets' class counts: classes by training images counted from the masks (LVIS rule)
    train_images: dict[int, int] = {}
    for record in ds:
        if record.split == "train":
            for c in np.unique(record.semantic()).tolist():
                if c:
                    train_images[c] = train_images.get(c, 0) + 1
    n = np.array(list(train_images.values()))
    assert table.loc["rare", "classes"] == int(((n >= 1) & (n <= 10)).sum())
    assert table.loc["common", "classes"] == int(((n > 10) & (n <= 100)).sum())
    assert table.loc["frequent", "classes"] == int((n > 100).sum())
    # the model is corrupted more on rare classes: below the frequent ones and below its ceiling
    assert table.loc["rare", "model mIoU"] < table.loc["frequent", "model mIoU"]
    assert (table["model mIoU"] < table["ceiling mIoU"]).all()
    assert table["ceiling mIoU"].between(0, 1).all()

    # overall mIoU recounted from the prediction PNGs and the masks (every class is evaluated,
    # train id = rank of class_id among the non-ignored classes; unlabeled pixels dropped)
    cids = np.sort(ds.classes.loc[~ds.classes["ignore"].fillna(False).astype(bool), "class_id"].to_numpy())
    lut = np.full(int(cids.max()) + 1, -1, np.int64)
    lut[cids] = np.arange(len(cids))
    k = len(cids)
    matrix = np.zeros((k, k), np.int64)
    for record in ds:
        if record.split != "val":
            continue
        gt = lut[record.semantic()]
        pred = np.asarray(Image.open(out / "predictions" / f"{record.image_id}.png")).astype(np.int64)
        keep = gt >= 0
        matrix += np.bincount(gt[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = matrix.sum(1) + matrix.sum(0) > 0
    return float(np.mean(tp[present] / union[present]))


def test_ceiling_per_bucket_script(tmp_path):
    stdout = run_script("ceiling_per_bucket.py", tmp_path / "out")
    miou = check_ceiling_per_bucket(tmp_path / "out")
    assert f"model mIoU {miou:.3f}" in stdout


def test_ceiling_per_bucket_notebook(tmp_path, kernel_dir):
    nb = run_notebook("ceiling_per_bucket.py", tmp_path / "out", kernel_dir)
    miou = check_ceiling_per_bucket(tmp_path / "out")
    assert f"model mIoU {miou:.3f}" in _outputs_text(nb)


# --------------------------------------------------------------------------- convert_for_training


def check_convert_for_training(out: Path):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    import segdata

    # Cityscapes, mmseg: the label PNG is the official trainId of the source labelIds file
    to_train = np.full(256, 255, np.uint8)
    not_ignored = np.zeros(256, bool)
    for label in labels.labels:
        if label.id >= 0:
            to_train[label.id] = label.trainId if 0 <= label.trainId < 255 else 255
            not_ignored[label.id] = not label.ignoreInEval
    sources = sorted((out / "cityscapes" / "gtFine").glob("*/*/*_gtFine_labelIds.png"))
    assert len(sources) == 12
    for path in sources:
        split, stem = path.parent.parent.name, path.name.replace("_gtFine_labelIds.png", "")
        exported = np.asarray(Image.open(out / "cs-mmseg" / "ann_dir" / split / f"{stem}.png"))
        np.testing.assert_array_equal(exported, to_train[np.asarray(Image.open(path))])
        # detectron2: the panoptic PNG holds csCreatePanopticImgs' segment ids (instanceIds
        # values, 0 where the class is ignoreInEval)
        inst = np.asarray(Image.open(str(path).replace("_labelIds", "_instanceIds"))).astype(np.int64)
        semantic = np.where(inst >= 1000, inst // 1000, inst)
        expected = np.where(not_ignored[semantic], inst, 0)
        rgb = np.asarray(
            Image.open(out / "cs-detectron2" / f"cityscapes_panoptic_{split}" / f"{stem}_gtFine_panoptic.png")
        )
        rgb = rgb.astype(np.int64)
        np.testing.assert_array_equal(rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2], expected)
    d2 = json.loads((out / "cs-detectron2" / "cityscapes_panoptic_train.json").read_text())
    assert sorted(c["id"] for c in d2["categories"]) == sorted(
        label.id for label in labels.labels if label.id >= 0 and not label.ignoreInEval
    )

    # COCO, mmseg: category ids in increasing order are train ids 0..79, no annotation 255
    coco = segdata.open(out / "coco-unified")
    categories = json.loads((out / "coco" / "annotations" / "instances_train2017.json").read_text())["categories"]
    cat_ids = sorted(c["id"] for c in categories)
    lut = np.full(max(cat_ids) + 1, 255, np.uint8)
    lut[cat_ids] = np.arange(len(cat_ids))
    for record in coco:
        exported = np.asarray(Image.open(out / "coco-mmseg" / "ann_dir" / record.split / f"{record.image_id}.png"))
        np.testing.assert_array_equal(exported, lut[record.semantic()])
    # COCO, detectron2: the segments of the panoptic PNG have the areas the JSON states
    pan_json = json.loads((out / "coco-detectron2" / "annotations" / "panoptic_val.json").read_text())
    assert {c["id"] for c in pan_json["categories"]} == set(cat_ids)
    for ann in pan_json["annotations"]:
        rgb = np.asarray(Image.open(out / "coco-detectron2" / "annotations" / "panoptic_val" / ann["file_name"]))
        pan = rgb.astype(np.int64) @ np.array([1, 256, 65536])
        ids, counts = np.unique(pan[pan > 0], return_counts=True)
        assert dict(zip(ids.tolist(), counts.tolist())) == {s["id"]: s["area"] for s in ann["segments_info"]}


def test_convert_for_training_script(tmp_path):
    stdout = run_script("convert_for_training.py", tmp_path / "out")
    check_convert_for_training(tmp_path / "out")
    assert "reduce_zero_label=False" in stdout
    assert "decode_head=dict(num_classes=19, ignore_index=255)" in stdout
    assert "decode_head=dict(num_classes=80, ignore_index=255)" in stdout


def test_convert_for_training_notebook(tmp_path, kernel_dir):
    nb = run_notebook("convert_for_training.py", tmp_path / "out", kernel_dir)
    check_convert_for_training(tmp_path / "out")
    assert "cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 19" in _outputs_text(nb)


# --------------------------------------------------------------------------- train_repeat_factor


def _class_rank_lut(ds) -> np.ndarray:
    """Unified class id -> train id of the default vocabulary (every class not flagged ignore,
    in class_id order; full ADE20K defines no train ids), -1 elsewhere."""
    cids = np.sort(ds.classes.loc[~ds.classes["ignore"].fillna(False).astype(bool), "class_id"].to_numpy())
    lut = np.full(int(cids.max()) + 1, -1, np.int64)
    lut[cids] = np.arange(len(cids))
    return lut


def check_train_repeat_factor(out: Path, threshold: float = 0.3):
    import segdata

    ds = segdata.open(out / "ade")
    lut = _class_rank_lut(ds)
    k = int(lut.max()) + 1
    # LVIS repeat factors recounted from the masks: f(c) = share of training images holding c
    train = [r for r in ds if r.split == "train"]
    held = np.zeros((len(train), k), bool)
    for i, record in enumerate(train):
        ids = lut[np.unique(record.semantic())]
        held[i, ids[ids >= 0]] = True
    f = held.mean(0)
    per_class = np.where(f > 0, np.maximum(1.0, np.sqrt(threshold / np.where(f > 0, f, 1))), 1.0)
    expected = np.array([per_class[h].max() if h.any() else 1.0 for h in held])
    factors = pd.read_csv(out / "repeat_factors.csv", index_col=0)["repeat_factor"]
    assert factors.index.astype(str).tolist() == [r.image_id for r in train]
    np.testing.assert_allclose(factors.to_numpy(), expected, rtol=1e-12)
    assert (expected > 1).any()

    # the validation mIoU of each run, recounted from its prediction PNGs and the masks
    scores = pd.read_csv(out / "scores.csv", index_col="sampling")
    assert list(scores.index) == ["uniform", "repeat factors"]
    assert {"rare mIoU", "common mIoU", "frequent mIoU"} <= set(scores.columns)
    for name in scores.index:
        matrix = np.zeros((k, k), np.int64)
        for record in ds:
            if record.split != "val":
                continue
            gt = lut[record.semantic()]
            pred = np.asarray(Image.open(out / "predictions" / name / f"{record.image_id}.png")).astype(np.int64)
            keep = gt >= 0
            matrix += np.bincount(gt[keep] * k + pred[keep], minlength=k * k).reshape(k, k)
        tp = np.diag(matrix)
        union = matrix.sum(0) + matrix.sum(1) - tp
        present = union > 0
        assert scores.loc[name, "mIoU"] == pytest.approx(float(np.mean(tp[present] / union[present])), abs=1e-12)


def test_train_repeat_factor_script(tmp_path):
    pytest.importorskip("torch")
    stdout = run_script("train_repeat_factor.py", tmp_path / "out")
    check_train_repeat_factor(tmp_path / "out")
    assert "repeat-factor sampling" in stdout


def test_train_repeat_factor_notebook(tmp_path, kernel_dir):
    pytest.importorskip("torch")
    run_notebook("train_repeat_factor.py", tmp_path / "out", kernel_dir)
    check_train_repeat_factor(tmp_path / "out")

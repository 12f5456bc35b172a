"""Model inference and evaluation on the device: sliding windows against whole images, an "oracle"
model whose predictions the test writes into the images, save_pred PNGs scored by the file path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import segdata  # noqa: E402
from segdata.errors import InputError  # noqa: E402
from segdata.eval import prediction_items  # noqa: E402
from segdata.eval.counting import count_files  # noqa: E402
from segdata.eval.space import EvalSpace  # noqa: E402
from segdata.maskio import read_png  # noqa: E402
from segdata.metrics import confusion_matrix  # noqa: E402
from segdata.torch.checkpoint import LoadedModel  # noqa: E402
from segdata.torch.confusion import count_files_torch  # noqa: E402
from segdata.torch.inference import (  # noqa: E402
    channel_table,
    evaluate_model,
    parse_size,
    predict,
    slide_windows,
    write_prediction,
)
from segdata.vocab import VocabEntry, Vocabulary  # noqa: E402
from tests.torch.builders import Img, write_unified  # noqa: E402

# --------------------------------------------------------------------------- predict


def test_slide_windows_follow_mmseg_grid():
    # 10 rows, window 4, stride 3: starts 0, 3, 6, and the last one shifted back to end at 10
    rows = sorted({(y1, y2) for y1, y2, _, _ in slide_windows(10, 4, (4, 4), (3, 3))})
    assert rows == [(0, 4), (3, 7), (6, 10)]
    # an image smaller than the window: one window, the whole image
    assert slide_windows(3, 2, (8, 8), (5, 5)) == [(0, 3, 0, 2)]
    # every pixel covered
    cover = np.zeros((37, 23), dtype=int)
    for y1, y2, x1, x2 in slide_windows(37, 23, (16, 8), (11, 5)):
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1


def test_parse_size():
    assert parse_size("512") == (512, 512)
    assert parse_size("512x1024") == (512, 1024)
    assert parse_size(7) == (7, 7)
    with pytest.raises(ValueError, match="HxW"):
        parse_size("big")


@pytest.mark.parametrize("window,stride", [((8, 8), (5, 5)), ((16, 7), None), ((64, 64), (32, 32)), ((5, 9), (5, 9))])
def test_sliding_window_equals_whole_image_for_a_translation_equivariant_model(window, stride):
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 5, 1).eval()
    images = torch.randn(2, 3, 21, 30)
    whole = predict(model, images)
    slid = predict(model, images, window=window, stride=stride)
    assert slid.shape == (2, 5, 21, 30)
    torch.testing.assert_close(slid, whole, rtol=1e-5, atol=1e-5)
    assert torch.equal(slid.argmax(1), whole.argmax(1))


def test_sliding_window_divides_by_the_count_map():
    class Ones(torch.nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 2, x.shape[2], x.shape[3])

    out = predict(Ones(), torch.zeros(1, 3, 13, 11), window=(6, 6), stride=(2, 2))
    assert torch.equal(out, torch.ones(1, 2, 13, 11))  # overlaps counted 1..9 times, all averaged to 1


def test_predict_upsamples_a_smaller_output_and_reads_dicts():
    class Half(torch.nn.Module):
        def forward(self, x):
            return {"out": torch.nn.functional.avg_pool2d(x[:, :2], 2)}

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = predict(Half(), x)
    assert out.shape == (2, 2, 8, 8)
    assert out.dtype == torch.float32


# --------------------------------------------------------------------------- the oracle dataset

# classes: (class_id, name, train_id, ignore); K = 3 from the train ids, class 4 ignored (void)
CLASSES = [(1, "a", 0, False), (2, "b", 1, False), (3, "c", 2, False), (4, "void", None, True)]
TRAIN_ID = {1: 0, 2: 1, 3: 2}


class Oracle(torch.nn.Module):
    """logit_c = 2 c R - c^2 on the raw red value R (normalised with mean 0, std 1/255): the
    argmax is the class nearest to R, so an image whose red channel holds 0, 1, 2 is predicted as
    exactly that."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, k, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            for c in range(k):
                self.conv.weight[c, 0] = 2.0 * c
                self.conv.bias[c] = -float(c * c)

    def forward(self, x):
        return self.conv(x)


RAW = {"mean": [0.0, 0.0, 0.0], "std": [1 / 255, 1 / 255, 1 / 255]}


def _oracle(vocab=None, k=3):
    return LoadedModel(Oracle(k).eval(), RAW, vocab, "oracle")


def _dataset(tmp_path):
    """Four val images (two sizes) and one train image; the red channel is the prediction."""
    rng = np.random.default_rng(5)
    images = []
    for i, (h, w) in enumerate([(12, 16), (12, 16), (9, 10), (12, 16)]):
        segmap = np.zeros((h, w), dtype=np.uint8)
        segmap[: h // 2, : w // 2] = 1
        segmap[: h // 2, w // 2 :] = 2
        segmap[h // 2 :, : w // 3] = 3
        segmap[h // 2 :, w // 3 : 2 * w // 3] = 4
        segmap[-1, -1] = 0  # one unlabeled pixel
        classes = {1: 1, 2: 2, 3: 3, 4: 4 if i % 2 else 1}  # segment 4: void, or class a again
        red = rng.integers(0, 3, (h, w)).astype(np.uint8)
        red[: h // 2, : w // 2] = 0  # segment 1 (class a) predicted right
        rgb = np.stack([red, rng.integers(0, 255, (h, w)), rng.integers(0, 255, (h, w))], axis=2).astype(np.uint8)
        images.append(Img(f"v{i}", "val", segmap, classes, rgb=rgb))
    images.append(Img("t0", "train", np.ones((4, 4), np.uint8), {1: 2}, rgb=np.zeros((4, 4, 3), np.uint8)))
    return segdata.open(write_unified(tmp_path / "ds", CLASSES, images)), images


def _expected(images):
    """The reference: gt train ids (255 ignored) from the segment maps, predictions = red channel."""
    total = np.zeros((3, 4), dtype=np.int64)
    per_image = {}
    for img in images:
        if img.split != "val":
            continue
        cls = np.zeros(int(img.segmap.max()) + 1, dtype=np.int64)
        for sid, cid in img.classes.items():
            cls[sid] = cid
        gt = np.vectorize(lambda c: TRAIN_ID.get(int(c), 255))(cls[img.segmap])
        pred = img.rgb[:, :, 0].astype(np.int64)
        m = confusion_matrix(gt, pred, 3, ignore_index=255)
        total += m
        hits = np.array(
            [int(((img.segmap == s) & (gt != 255) & (gt == pred)).sum()) for s in range(int(img.segmap.max()) + 1)]
        )
        per_image[img.image_id] = (m, hits, pred)
    return total, per_image


@pytest.mark.parametrize("batch_size,workers", [(1, 0), (3, 0), (2, 2)])
def test_evaluate_model_counts_what_the_model_predicts(tmp_path, batch_size, workers):
    ds, images = _dataset(tmp_path)
    space = EvalSpace.build(ds, "train")
    assert space.num_classes == 3
    done = []
    counts = evaluate_model(
        ds,
        _oracle(),
        "val",
        space,
        batch_size=batch_size,
        workers=workers,
        save_pred=tmp_path / "pred",
        progress=lambda d, t: done.append((d, t)),
    )
    total, per_image = _expected(images)
    assert counts.image_ids == ["v0", "v1", "v2", "v3"]
    np.testing.assert_array_equal(counts.matrix, total)
    for i, iid in enumerate(counts.image_ids):
        m, hits, pred = per_image[iid]
        np.testing.assert_array_equal(counts.tp[i], np.diagonal(m[:, :3]))
        np.testing.assert_array_equal(counts.gt[i], m.sum(1))
        np.testing.assert_array_equal(counts.pred[i], m[:, :3].sum(0))
        np.testing.assert_array_equal(counts.segment_hits[iid], hits)
        png = read_png(tmp_path / "pred" / f"{iid}.png")  # save_pred: the argmax, as train ids
        assert png.dtype == np.uint8
        np.testing.assert_array_equal(png, pred)
    assert done[-1] == (4, 4)


def test_evaluate_model_sliding_window_and_amp_give_the_same_counts(tmp_path):
    ds, images = _dataset(tmp_path)
    space = EvalSpace.build(ds, "train")
    total, _ = _expected(images)
    slid = evaluate_model(ds, _oracle(), "val", space, window=(5, 6), stride=(3, 4))
    np.testing.assert_array_equal(slid.matrix, total)
    amp = evaluate_model(ds, _oracle(), "val", space, batch_size=2, amp=True)
    np.testing.assert_array_equal(amp.matrix, total)


def test_save_pred_is_scored_identically_by_the_file_path(tmp_path):
    ds, _ = _dataset(tmp_path)
    space = EvalSpace.build(ds, "train")
    torch.manual_seed(1)
    model = LoadedModel(torch.nn.Conv2d(3, 3, 3, padding=1).eval(), RAW, None, "random conv")
    counts = evaluate_model(ds, model, "val", space, batch_size=2, save_pred=tmp_path / "pred")
    items, skipped = prediction_items(ds, space, tmp_path / "pred", "val")
    assert skipped == []
    for files in (count_files(space, items, workers=1), count_files_torch(space, items, workers=1, device="cpu")):
        assert files.image_ids == counts.image_ids
        for name in ("matrix", "tp", "gt", "pred"):
            np.testing.assert_array_equal(getattr(files, name), getattr(counts, name))
        assert files.segment_hits.keys() == counts.segment_hits.keys()
        for iid, hits in files.segment_hits.items():
            np.testing.assert_array_equal(hits, counts.segment_hits[iid])
    assert counts.matrix.sum() == sum(int(counts.gt[i].sum()) for i in range(4)) > 0


def test_model_channels_are_mapped_through_its_vocabulary(tmp_path):
    ds, images = _dataset(tmp_path)
    space = EvalSpace.build(ds, "train")
    # the model's train ids in reverse order: its channel c is eval class 2 - c
    reverse = Vocabulary(tuple(VocabEntry(c, "abc"[2 - c], (3 - c,)) for c in range(3)))
    counts = evaluate_model(ds, _oracle(reverse), "val", space, save_pred=tmp_path / "pred")
    flipped = np.zeros((3, 4), dtype=np.int64)
    for img in images:
        if img.split == "val":
            cls = np.zeros(int(img.segmap.max()) + 1, dtype=np.int64)
            for sid, cid in img.classes.items():
                cls[sid] = cid
            gt = np.vectorize(lambda c: TRAIN_ID.get(int(c), 255))(cls[img.segmap])
            flipped += confusion_matrix(gt, 2 - img.rgb[:, :, 0].astype(np.int64), 3, ignore_index=255)
            np.testing.assert_array_equal(read_png(tmp_path / "pred" / f"{img.image_id}.png"), 2 - img.rgb[:, :, 0])
    np.testing.assert_array_equal(counts.matrix, flipped)


def test_a_model_that_does_not_fit_the_evaluated_classes_is_an_error(tmp_path):
    ds, _ = _dataset(tmp_path)
    space = EvalSpace.build(ds, "train")
    with pytest.raises(InputError, match="outputs 4 channels, the evaluation has 3 classes") as info:
        evaluate_model(ds, _oracle(k=4), "val", space)
    assert info.value.path == "oracle"
    other = Vocabulary((VocabEntry(0, "a", (1,)), VocabEntry(1, "b+c", (2, 3)), VocabEntry(2, "void", (4,))))
    with pytest.raises(InputError, match="not the evaluated one"):
        channel_table(other, space, 3, "m.pt")
    assert channel_table(None, space, 3, "m.pt") is None
    assert channel_table(space.vocab, space, 3, "m.pt") is None


def test_a_missing_image_file_names_it(tmp_path):
    ds, _ = _dataset(tmp_path)
    (ds.path / "images" / "val" / "v2.png").unlink()
    with pytest.raises(InputError, match="not found") as info:
        evaluate_model(ds, _oracle(), "val", EvalSpace.build(ds, "train"), workers=2)
    assert info.value.path.endswith("v2.png")


def test_write_prediction_is_16_bit_above_255_classes(tmp_path):
    values = np.array([[0, 299], [256, 7]])
    path = write_prediction(tmp_path, "sub/x", values, 300)
    assert path == tmp_path / "sub" / "x.png"
    back = read_png(path)
    assert back.dtype == np.uint16
    assert back.tolist() == [[0, 299], [256, 7]]
    assert read_png(write_prediction(tmp_path, "y", np.array([[3]]), 255)).dtype == np.uint8


def test_a_checkpoint_scores_what_its_saved_predictions_score(tmp_path):
    """A segdata checkpoint -> `eval --model RUN/checkpoint.pt --save-pred DIR` -> `eval --pred
    DIR`: the same figures (bootstrap intervals included), through the command line."""
    import json

    from click.testing import CliRunner

    from segdata.cli import main
    from segdata.torch.checkpoint import save_checkpoint
    from segdata.torch.models import build

    ds, _ = _dataset(tmp_path)
    torch.manual_seed(3)
    net = build("unet-small", 3, base=4)
    run = tmp_path / "run"
    run.mkdir()
    vocab = EvalSpace.build(ds, "train").vocab
    save_checkpoint(
        run / "checkpoint.pt",
        arch="unet-small",
        arch_args={"base": 4},
        num_classes=3,
        vocab=vocab,
        state_dict=net.state_dict(),
    )
    pred = tmp_path / "pred"
    common = ["--json", "--bootstrap", "50", "--by-frequency"]
    model = CliRunner().invoke(
        main, ["eval", str(ds.path), "--model", str(run / "checkpoint.pt"), "--save-pred", str(pred), *common]
    )
    assert model.exit_code == 0, model.output
    files = CliRunner().invoke(main, ["eval", str(ds.path), "--pred", str(pred), "--workers", "1", *common])
    assert files.exit_code == 0, files.output
    a, b = json.loads(model.output), json.loads(files.output)
    a.pop("settings"), b.pop("settings")
    assert a == b
    assert sorted(p.name for p in pred.iterdir()) == ["v0.png", "v1.png", "v2.png", "v3.png"]


_ORACLE_FACTORY = """
import torch


def oracle():
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(3):
            conv.weight[c, 0] = 2.0 * c
            conv.bias[c] = -float(c * c)
    return conv


oracle.segdata_normalize = {"mean": [0, 0, 0], "std": [1 / 255, 1 / 255, 1 / 255]}
"""

_EVAL_WORKER = """
import sys
import numpy as np
import segdata
from segdata.eval.space import EvalSpace
from segdata.torch.inference import evaluate_model

ds_path, spec, out = sys.argv[1:4]
ds = segdata.open(ds_path)
counts = evaluate_model(ds, spec, "val", EvalSpace.build(ds, "train"), batch_size=2)  # starts gloo itself
import torch.distributed as dist
assert not dist.is_initialized()  # the group it started is closed again
rank = sys.argv[4]
hits = np.concatenate([counts.segment_hits[i] for i in counts.image_ids])
np.savez(f"{out}/rank{rank}.npz", matrix=counts.matrix, tp=counts.tp, gt=counts.gt, pred=counts.pred, hits=hits,
         ids=np.array(counts.image_ids))
"""


def test_evaluate_model_under_two_processes_equals_one(tmp_path):
    """WORLD_SIZE=2 (what torchrun sets): each process runs every other image, the counts are
    all-reduced (gloo), and both processes return the one-process counts."""
    import os
    import subprocess
    import sys

    from tests.torch.test_confusion import _free_port

    ds, images = _dataset(tmp_path)
    (tmp_path / "oracle_factory.py").write_text(_ORACLE_FACTORY)
    (tmp_path / "worker.py").write_text(_EVAL_WORKER)
    spec = f"{tmp_path / 'oracle_factory.py'}:oracle"
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="2")
    procs = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "worker.py"), str(ds.path), spec, str(tmp_path), str(r)],
            env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode(errors="replace")[-3000:]
    one = evaluate_model(ds, spec, "val", EvalSpace.build(ds, "train"))
    total, _ = _expected(images)
    np.testing.assert_array_equal(one.matrix, total)
    for r in range(2):
        got = np.load(tmp_path / f"rank{r}.npz")
        assert got["ids"].tolist() == ["v0", "v1", "v2", "v3"]
        np.testing.assert_array_equal(got["matrix"], total)
        for name in ("tp", "gt", "pred"):
            np.testing.assert_array_equal(got[name], getattr(one, name))
        np.testing.assert_array_equal(got["hits"], np.concatenate([one.segment_hits[i] for i in one.image_ids]))

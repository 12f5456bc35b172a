"""segdata.torch.train and `segdata train`: training lowers the loss, a seed fixes the weights,
a resumed run equals the uninterrupted one, the checkpoint rebuilds the model, the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from segdata.cli import main  # noqa: E402
from segdata.errors import InputError, OutputExistsError, SelectionError  # noqa: E402
from segdata.format import Dataset  # noqa: E402
from segdata.torch.models import build  # noqa: E402
from segdata.torch.train import CHECKPOINT_KEYS, TrainingInterrupted, train  # noqa: E402

TINY = {"width": 8, "aspp_channels": 16}
FAST = {"batch_size": 2, "crop": 32, "arch_args": TINY, "scale": (0.75, 1.25)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a busy machine a second one mostly spins (ten times the CPU time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """24 generated ADE20K images (64x96, 8 classes; 18 train, 6 val), converted."""
    from segdata.convert import convert
    from segdata.converters import ade20k
    from segdata.synthetic import generate_ade20k_2021

    root = tmp_path_factory.mktemp("tiny")
    release = generate_ade20k_2021(
        root / "source", 24, image_size=(64, 96), n_classes=8, parts=False, val_fraction=0.25, seed=1
    )
    convert(ade20k, release, root / "unified")
    return root / "unified"


def _state(run):
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["state_dict"]


def _same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss(dataset, tmp_path):
    run = tmp_path / "run"
    result = train(dataset, run, iters=40, lr=0.05, seed=0, **FAST)
    losses = [r["loss"] for r in _lines(run)]
    assert len(losses) == 40
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.8 * first
    assert result.iters == 40 and result.start_iter == 0
    assert result.loss_first == pytest.approx(np.mean(losses[:4]), rel=1e-5)


def test_metrics_lines_parse_and_evaluations_carry_buckets(dataset, tmp_path):
    run = tmp_path / "run"
    train(dataset, run, iters=6, eval_every=3, log_every=2, **FAST)
    lines = _lines(run)
    assert [r["iter"] for r in lines] == [2, 3, 4, 6]  # every second iteration, and each evaluation
    assert all(isinstance(r["loss"], float) and r["lr"] > 0 for r in lines)
    evaluated = [r for r in lines if "miou" in r]
    assert [r["iter"] for r in evaluated] == [3, 6]
    # the buckets are what `segdata eval --model RUN/checkpoint.pt --by-frequency --json` reports
    cli = CliRunner().invoke(
        main, ["eval", str(dataset), "--model", str(run / "checkpoint.pt"), "--by-frequency", "--json"]
    )
    assert cli.exit_code == 0, cli.output
    report = json.loads(cli.output)
    assert evaluated[-1]["buckets"] == report["buckets"] and evaluated[-1]["miou"] == report["miou"]
    assert {b["name"] for b in report["buckets"]} <= {"rare", "common", "frequent"}
    # the poly schedule: lr at iteration i (0-based) is 0.01 * (1 - i / 6) ** 0.9
    assert lines[0]["lr"] == pytest.approx(0.01 * (1 - 1 / 6) ** 0.9)


def test_same_seed_same_weights_whatever_the_workers(dataset, tmp_path):
    a = train(dataset, tmp_path / "a", iters=4, seed=7, **FAST)
    train(dataset, tmp_path / "b", iters=4, seed=7, workers=2, **FAST)
    train(dataset, tmp_path / "c", iters=4, seed=8, **FAST)
    assert _same_weights(_state(a.out), _state(tmp_path / "b"))
    assert not _same_weights(_state(a.out), _state(tmp_path / "c"))


@pytest.mark.parametrize(("sampler", "loss"), [("uniform", "ce"), ("repeat-factor", "class-balanced")])
def test_resume_equals_the_uninterrupted_run(dataset, tmp_path, sampler, loss):
    options = dict(iters=7, eval_every=3, seed=3, sampler=sampler, loss=loss, **FAST)
    train(dataset, tmp_path / "whole", **options)

    def stop(done, total, value):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as info:
        train(dataset, tmp_path / "cut", progress=stop, **options)
    assert info.value.iteration == 5
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert ckpt["iter"] == 5
    resumed = train(dataset, tmp_path / "cut", resume=True, **options)
    assert resumed.start_iter == 5 and resumed.iters == 7
    assert _same_weights(_state(tmp_path / "whole"), _state(tmp_path / "cut"))
    assert (tmp_path / "whole" / "metrics.jsonl").read_text() == (tmp_path / "cut" / "metrics.jsonl").read_text()


def test_checkpoint_keys_and_the_rebuilt_model_scores_what_the_run_logged(dataset, tmp_path):
    run = tmp_path / "run"
    train(dataset, run, iters=5, model="unet-small", arch_args={"base": 4}, batch_size=2, crop=32)
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert set(ckpt) == set(CHECKPOINT_KEYS)
    assert ckpt["format"] == "segdata-checkpoint" and ckpt["format_version"] == 1
    assert (ckpt["arch"], ckpt["arch_args"], ckpt["iter"], ckpt["seed"]) == ("unet-small", {"base": 4}, 5, 0)
    ds = Dataset(dataset)
    assert ckpt["num_classes"] == len(ds.classes) == len(ckpt["vocab"]["classes"])
    model = build(ckpt["arch"], ckpt["num_classes"], **ckpt["arch_args"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    # the val mIoU by hand: numpy confusion over the val images, the class ids mapped to train ids
    lut = np.full(int(ds.classes["class_id"].max()) + 1, 255)
    for entry in ckpt["vocab"]["classes"]:
        lut[entry["class_ids"]] = entry["train_id"]
    from PIL import Image

    mean, std = (np.array(ckpt["normalize"][k], dtype=np.float32) for k in ("mean", "std"))
    k = ckpt["num_classes"]
    confusion = np.zeros((k, k), dtype=np.int64)
    for image_id in ds.images.loc[ds.images["split"] == "val", "image_id"]:
        rgb = np.asarray(Image.open(ds.image_path(image_id)).convert("RGB"), dtype=np.float32) / 255
        x = torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1)).unsqueeze(0)
        with torch.no_grad():
            pred = model(x)[0].argmax(0).numpy()
        gt = lut[ds.semantic(image_id)]
        valid = gt != 255
        np.add.at(confusion, (gt[valid], pred[valid]), 1)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    expected = np.mean(tp[union > 0] / union[union > 0])
    assert _lines(run)[-1]["miou"] == pytest.approx(expected, abs=1e-6)


def test_out_is_refused_unless_resume_or_overwrite(dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        train(dataset, run, iters=1, **FAST)
    with pytest.raises(InputError, match="no checkpoint"):
        train(dataset, run, iters=1, resume=True, **FAST)
    train(dataset, run, iters=1, overwrite=True, **FAST)
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own files are replaced
    with pytest.raises(InputError, match="other options: batch_size 2 there, 3 here"):
        train(dataset, run, iters=2, resume=True, **{**FAST, "batch_size": 3})


def test_bad_choices_are_selection_errors(dataset, tmp_path):
    with pytest.raises(SelectionError, match="unknown model"):
        train(dataset, tmp_path / "a", model="resnet9", iters=1, **FAST)
    with pytest.raises(SelectionError, match="sampler"):
        train(dataset, tmp_path / "b", sampler="balanced", iters=1, **FAST)
    with pytest.raises(SelectionError, match="no split 'test'"):
        train(dataset, tmp_path / "c", val_split="test", eval_every=1, iters=1, **FAST)


def test_cli_help_has_an_example():
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "segdata train" in result.output


def test_cli_missing_dataset_is_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "nowhere" in lines[0] and lines[0].startswith("error:")
    assert not (tmp_path / "run").exists()


def test_cli_without_torch_exits_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    result = CliRunner().invoke(main, ["train", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "segdata train needs PyTorch: pip install 'segdata[torch]'" in result.output


def test_cli_trains_and_prints_json(dataset, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(dataset), "--out", str(run), "--iters", "2", "--batch-size", "2", "--crop", "32"]
    result = CliRunner().invoke(main, [*args, "--model", "unet-small", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["iters"] == 2 and report["checkpoint"] == str(run / "checkpoint.pt")
    assert [line["iter"] for line in _lines(run)] == [1, 2]
    again = CliRunner().invoke(main, [*args, "--model", "unet-small"])
    assert again.exit_code == 1 and "not empty" in again.output


def test_small_tail_run_checkpoint_eval_equals_its_saved_predictions(dataset, tmp_path):
    """The small version of benchmarks/tail.py: a repeat-factor run lowers the loss, and `eval
    --model` of its checkpoint scores what `eval --pred` scores on the PNGs it saved."""
    run = tmp_path / "run"
    result = train(dataset, run, iters=24, lr=0.05, sampler="repeat-factor", repeat_threshold=0.5, **FAST)
    assert result.loss_last < result.loss_first
    common = [str(dataset), "--by-frequency", "--bootstrap", "0", "--json"]
    pred = tmp_path / "pred"
    by_model = CliRunner().invoke(
        main, ["eval", *common, "--model", str(run / "checkpoint.pt"), "--save-pred", str(pred)]
    )
    assert by_model.exit_code == 0, by_model.output
    by_files = CliRunner().invoke(main, ["eval", *common, "--pred", str(pred), "--pred-ids", "train"])
    assert by_files.exit_code == 0, by_files.output
    a, b = json.loads(by_model.output), json.loads(by_files.output)
    assert len(list(pred.glob("*.png"))) == 6
    assert (a["miou"], a["per_class"], a["buckets"]) == (b["miou"], b["per_class"], b["buckets"])
    assert a["miou"] == _lines(run)[-1]["miou"]

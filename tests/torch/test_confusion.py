"""DeviceConfusion against the numpy confusion matrix, per image and per segment; two processes
under torch.distributed (gloo) give the one-process counts; the device path of prediction files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segdata.errors import InputError  # noqa: E402
from segdata.metrics import confusion_matrix  # noqa: E402
from segdata.torch import confusion as dc  # noqa: E402
from segdata.torch.confusion import DeviceConfusion, count_arrays_torch  # noqa: E402

K = 7


def _random(n=5, h=24, w=31, k=K, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.integers(-1, k, (n, h, w))  # -1 ignored
    pred = rng.integers(-2, k + 3, (n, h, w))  # negatives and >= k are misses
    segs = rng.integers(0, 13, (n, h, w))
    return gt, pred, segs


def _numpy_matrix(gt, pred, k=K):
    """The reference: segdata.metrics' numpy matrix (ignore as 255)."""
    return confusion_matrix(np.where(gt < 0, 255, gt), pred, k, ignore_index=255)


@pytest.mark.parametrize("bins", [dc._PER_IMAGE_MATRIX_BINS, 1])  # one bincount / the many-class path
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_matrix_and_per_image_rows_equal_numpy(monkeypatch, bins, batch):
    monkeypatch.setattr(dc, "_PER_IMAGE_MATRIX_BINS", bins)
    gt, pred, segs = _random()
    c = DeviceConfusion(K)
    for start in range(0, len(gt), batch):
        sl = slice(start, start + batch)
        c.update(torch.from_numpy(gt[sl]), torch.from_numpy(pred[sl]), torch.from_numpy(segs[sl]))
    counts = c.to_counts([f"i{i}" for i in range(len(gt))])
    assert counts.matrix.dtype == np.int64
    np.testing.assert_array_equal(counts.matrix, _numpy_matrix(gt, pred))
    assert counts.matrix.sum() == (gt >= 0).sum()
    for i in range(len(gt)):
        m = _numpy_matrix(gt[i], pred[i])
        np.testing.assert_array_equal(counts.tp[i], np.diagonal(m[:, :K]))
        np.testing.assert_array_equal(counts.gt[i], m.sum(1))
        np.testing.assert_array_equal(counts.pred[i], m[:, :K].sum(0))
        # brute force: pixels of each segment predicted as their own (non-ignored) class
        want = np.zeros(segs[i].max() + 1, dtype=np.int64)
        for s in range(len(want)):
            sel = segs[i] == s
            want[s] = ((gt[i][sel] >= 0) & (pred[i][sel] == gt[i][sel])).sum()
        np.testing.assert_array_equal(counts.segment_hits[f"i{i}"], want)


def test_known_small_case_and_misses():
    gt = torch.tensor([[0, 0, 1, 1, -1, 2]])
    pred = torch.tensor([[0, 1, 3, 1, 0, -5]])  # 3 = K (miss), -5 a miss too; the -1 pixel dropped
    c = DeviceConfusion(3)
    c.update(gt, pred, segments=torch.tensor([[1, 1, 2, 2, 0, 3]]))
    counts = c.to_counts(["a"], segment_lengths={"a": 6})
    assert counts.matrix.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 1]]
    assert counts.tp.tolist() == [[1, 1, 0]]
    assert counts.gt.tolist() == [[2, 2, 1]]
    assert counts.pred.tolist() == [[1, 2, 0]]
    assert counts.segment_hits["a"].tolist() == [0, 1, 1, 0, 0, 0]  # padded to the table's 6


def test_rows_follow_the_index_given():
    gt, pred, _ = _random(n=3)
    c = DeviceConfusion(K)
    for i in (2, 0, 1):
        c.update(torch.from_numpy(gt[i]), torch.from_numpy(pred[i]), index=[i])
    counts = c.to_counts(["a", "b", "c"])
    for i in range(3):
        assert counts.gt[i].tolist() == _numpy_matrix(gt[i], pred[i]).sum(1).tolist()


def test_bad_input():
    c = DeviceConfusion(3)
    with pytest.raises(ValueError, match="shape"):
        c.update(torch.zeros((2, 2), dtype=torch.int64), torch.zeros((2, 3), dtype=torch.int64))
    with pytest.raises(ValueError, match="integer"):
        c.update(torch.zeros((2, 2)), torch.zeros((2, 2)))
    c.update(torch.tensor([[0, 3]]), torch.tensor([[0, 0]]))  # 3 is no eval index of K = 3
    with pytest.raises(ValueError, match="1 ground-truth pixels"):
        c.to_counts(["a"])
    c = DeviceConfusion(3)
    c.update(torch.tensor([[0]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="counted once"):
        c.to_counts(["a", "b"])


_WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    import torch.distributed as dist
    from segdata.torch.confusion import DeviceConfusion

    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(0)
    gt = rng.integers(-1, 7, (7, 20, 30))
    pred = rng.integers(0, 9, (7, 20, 30))
    segs = rng.integers(0, 12, (7, 20, 30))
    c = DeviceConfusion(7)
    for i in range(rank, 7, world):  # this process's shard of the images
        c.update(torch.from_numpy(gt[i]), torch.from_numpy(pred[i]), torch.from_numpy(segs[i]), index=[i])
    c.all_reduce()
    counts = c.to_counts([f"i{i}" for i in range(7)])
    hits = np.concatenate([counts.segment_hits[f"i{i}"] for i in range(7)])
    np.savez(f"{out}/rank{rank}.npz", matrix=counts.matrix, tp=counts.tp, gt=counts.gt, pred=counts.pred, hits=hits)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_all_reduce_to_the_one_process_counts(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="2")
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode(errors="replace")[-3000:]
    # the one-process reference over all the images
    rng = np.random.default_rng(0)
    gt = rng.integers(-1, 7, (7, 20, 30))
    pred = rng.integers(0, 9, (7, 20, 30))
    segs = rng.integers(0, 12, (7, 20, 30))
    one = DeviceConfusion(7)
    one.update(torch.from_numpy(gt), torch.from_numpy(pred), torch.from_numpy(segs))
    ref = one.to_counts([f"i{i}" for i in range(7)])
    np.testing.assert_array_equal(ref.matrix, _numpy_matrix(gt, pred, 7))
    for r in range(2):
        got = np.load(tmp_path / f"rank{r}.npz")
        np.testing.assert_array_equal(got["matrix"], _numpy_matrix(gt, pred, 7))
        for name in ("tp", "gt", "pred"):
            np.testing.assert_array_equal(got[name], getattr(ref, name))
        np.testing.assert_array_equal(got["hits"], np.concatenate([ref.segment_hits[f"i{i}"] for i in range(7)]))


# --------------------------------------------------------------------------- prediction files


def _space(k, pred_lut):
    return SimpleNamespace(num_classes=k, pred_lut=pred_lut, describe_pred_ids=lambda: f"train ids 0..{k - 1}")


@pytest.mark.parametrize("k,dtype", [(4, np.uint8), (300, np.uint16)])  # 16-bit predictions above 255 classes
def test_count_arrays_torch_equals_numpy(k, dtype):
    rng = np.random.default_rng(3)
    miss = 255 if dtype == np.uint8 else 65535
    pred_lut = np.full(65536, -2, dtype=np.int32)
    pred_lut[:k] = np.arange(k)
    pred_lut[miss] = k  # no prediction
    pairs, ref = [], np.zeros((k, k + 1), dtype=np.int64)
    shapes = [(10, 12), (10, 12), (9, 5), (10, 12)]
    for i, shape in enumerate(shapes):
        segs = rng.integers(0, 6, shape).astype(dtype)
        lut = np.array([-1, 0, 1, 2, k - 1, -1, -1], dtype=np.int64)[: 6 + i % 2]  # id 0 and 5 not evaluated
        raw = rng.choice(np.array([0, 1, 2, k - 1, miss], dtype=dtype), shape)
        pairs.append((f"im{i}", segs, raw, lut))
        ref += _numpy_matrix(lut[segs], pred_lut[raw], k)
    counts = count_arrays_torch(iter(pairs), _space(k, pred_lut), "cpu", batch_size=2)
    np.testing.assert_array_equal(counts.matrix, ref)
    assert counts.image_ids == ["im0", "im1", "im2", "im3"]
    for i, (_, segs, raw, lut) in enumerate(pairs):
        g, p = lut[segs], pred_lut[raw]
        assert counts.gt[i].tolist() == [int((g == c).sum()) for c in range(k)]
        hits = np.bincount(segs[(g >= 0) & (g == p)], minlength=len(lut))
        np.testing.assert_array_equal(counts.segment_hits[f"im{i}"], hits)


def test_count_arrays_torch_names_the_file_with_an_invalid_value(tmp_path):
    from segdata.maskio import encode_png

    pred_lut = np.full(256, -2, dtype=np.int32)
    pred_lut[:2] = [0, 1]
    segs = np.ones((3, 3), dtype=np.uint8)
    raw = np.zeros((3, 3), dtype=np.uint8)
    bad = raw.copy()
    bad[1, 1] = 7
    (tmp_path / "b.png").write_bytes(encode_png(bad))
    lut = np.array([-1, 0])
    pairs = [("a", segs, raw, lut, ("m/a.png", "p/a.png")), ("b", segs, bad, lut, ("m/b.png", tmp_path / "b.png"))]
    with pytest.raises(InputError, match="value 7 is outside the id space") as info:
        count_arrays_torch(pairs, _space(2, pred_lut))
    assert info.value.path == str(tmp_path / "b.png")
    # arrays without a file: the number of pixels
    with pytest.raises(InputError, match="a value in 1 pixels is outside") as info:
        count_arrays_torch([("b", segs, bad, lut)], _space(2, pred_lut))
    assert info.value.path == "b"
    beyond = np.full((2, 2), 3, np.uint8)
    beyond[0, 0] = 1
    with pytest.raises(InputError, match="3 pixels hold a segment id that has no row") as info:
        count_arrays_torch([("c", beyond, raw[:2, :2], lut, ("m/c.png", "p/c.png"))], _space(2, pred_lut))
    assert info.value.path == "m/c.png"


@pytest.mark.parametrize("bins", [dc._PAIR_BINS, 1])  # by segment / pixel by pixel
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_update_segments_equals_update(monkeypatch, bins, dtype):
    monkeypatch.setattr(dc, "_PAIR_BINS", bins)
    rng = np.random.default_rng(11)
    k, b = 5, 3
    segs = rng.integers(0, 9, (b, 14, 11)).astype(dtype)
    luts = [rng.integers(-1, k, 9 + i) for i in range(b)]  # tables longer than the largest id
    pred = rng.integers(0, k + 1, (b, 14, 11))  # K = miss
    one = DeviceConfusion(k)
    segs_t = torch.from_numpy(segs.copy())
    one.update_segments(segs_t, luts, torch.from_numpy(pred))
    np.testing.assert_array_equal(segs_t.numpy(), segs)  # the caller's tensor untouched
    got = one.to_counts(["a", "b", "c"])
    assert one.problems().tolist() == [[0, 0]] * b
    ref = np.zeros((k, k + 1), dtype=np.int64)
    for i in range(b):
        gt = luts[i][segs[i].astype(np.int64)]
        m = _numpy_matrix(gt, pred[i], k)
        ref += m
        np.testing.assert_array_equal(got.gt[i], m.sum(1))
        np.testing.assert_array_equal(got.tp[i], np.diagonal(m[:, :k]))
        np.testing.assert_array_equal(got.pred[i], m[:, :k].sum(0))
        hits = np.bincount(segs[i][(gt >= 0) & (gt == pred[i])].astype(np.int64), minlength=len(luts[i]))
        np.testing.assert_array_equal(got.segment_hits["abc"[i]], hits)
    np.testing.assert_array_equal(got.matrix, ref)

"""Repeat factors, the repeat-factor sampler and class weights, against hand computations on a
dataset whose class image counts the test sets (1, 10 and 100 images)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segdata.torch import (  # noqa: E402
    RepeatFactorSampler,
    SegmentationDataset,
    class_counts,
    class_weights,
    repeat_factors,
)
from segdata.vocab import VocabEntry, Vocabulary  # noqa: E402
from tests.torch.builders import Img, write_unified  # noqa: E402

A, B, C, B2, VOID, D = 1, 2, 3, 4, 5, 6
CLASSES = [
    (A, "a", 0, False),
    (B, "b", 1, False),
    (C, "c", 2, False),
    (B2, "b2", None, False),
    (VOID, "void", None, True),
    (D, "d", None, False),
]


@pytest.fixture(scope="module")
def tail(tmp_path_factory):
    """100 train images of 2x2 pixels: A everywhere (100 images), B in images 0..9 (one pixel
    each), C in image 0 (one pixel); B2 in images 10..14, void in image 50 (one pixel each); image
    60 lists a C segment of area 0. 10 val images hold C (not counted for train)."""
    images = []
    for k in range(100):
        seg = np.ones((2, 2), np.uint8)
        classes = {1: A}
        areas = {}
        if k < 10:
            seg[1, 0] = 2
            classes[2] = B
        if k == 0:
            seg[1, 1] = 3
            classes[3] = C
        if 10 <= k < 15:
            seg[1, 0] = 2
            classes[2] = B2
        if k == 50:
            seg[1, 0] = 2
            classes[2] = VOID
        if k == 60:
            classes[2] = C
            areas[2] = 0
        images.append(Img(f"t{k:03d}", "train", seg, classes, areas=areas))
    for k in range(10):
        images.append(Img(f"v{k:03d}", "val", np.full((2, 2), 1, np.uint8), {1: C}))
    return write_unified(tmp_path_factory.mktemp("tail") / "ds", CLASSES, images)


MERGED = Vocabulary(
    (VocabEntry(0, "a", (A,)), VocabEntry(1, "b", (B, B2)), VocabEntry(2, "c", (C,)), VocabEntry(3, "d", (D,)))
)


def test_counts_by_images_and_pixels(tail):
    np.testing.assert_array_equal(class_counts(tail, "train"), [100, 10, 1])
    np.testing.assert_array_equal(class_counts(tail, "train", by="pixels"), [400 - 10 - 1 - 5 - 1, 10, 1])
    np.testing.assert_array_equal(class_counts(tail, "train", MERGED), [100, 15, 1, 0])
    np.testing.assert_array_equal(class_counts(tail, "val"), [0, 0, 10])


def test_repeat_factors_by_images_equal_the_hand_computation(tail):
    t = 0.5
    r = repeat_factors(tail, "train", threshold=t)
    expected = np.ones(100)
    expected[1:10] = math.sqrt(t / 0.10)  # B: 10 of 100 images
    expected[0] = math.sqrt(t / 0.01)  # C: 1 of 100 (B's factor is smaller)
    np.testing.assert_allclose(r, expected, rtol=1e-12)
    # the order is the dataset's: factors[i] belongs to dataset[i]
    data = SegmentationDataset(tail, "train", label_only=True)
    assert data.image_ids[0] == "t000" and len(r) == len(data)
    np.testing.assert_allclose(repeat_factors(data, threshold=t), expected, rtol=1e-12)


def test_merged_classes_count_an_image_holding_any_of_them(tail):
    t = 0.5
    r = repeat_factors(tail, "train", MERGED, threshold=t)
    expected = np.ones(100)
    expected[1:15] = math.sqrt(t / 0.15)  # B or B2: 15 images
    expected[0] = math.sqrt(t / 0.01)
    np.testing.assert_allclose(r, expected, rtol=1e-12)


def test_repeat_factors_by_pixels(tail):
    t = 0.05
    r = repeat_factors(tail, "train", threshold=t, by="pixels")
    expected = np.ones(100)
    expected[1:10] = math.sqrt(t / (10 / 400))
    expected[0] = math.sqrt(t / (1 / 400))
    np.testing.assert_allclose(r, expected, rtol=1e-12)
    # a threshold below every share repeats nothing
    np.testing.assert_array_equal(repeat_factors(tail, "train", threshold=1e-4, by="pixels"), np.ones(100))


def test_class_weights_follow_the_effective_number_formula(tail):
    beta = 0.9
    n = np.array([100, 15, 1, 0], float)
    w = np.array([(1 - beta) / (1 - beta**c) if c else 0.0 for c in n])
    expected = w * 4 / w.sum()
    got = class_weights(tail, "train", MERGED, beta=beta, by="images")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[3] == 0 and got.sum() == pytest.approx(4)
    n = np.array([383, 10, 1], float)
    w = (1 - 0.99) / (1 - 0.99**n)
    np.testing.assert_allclose(class_weights(tail, "train", beta=0.99, by="pixels"), w * 3 / w.sum(), rtol=1e-12)
    # beta = 0: every present class weighs the same
    np.testing.assert_allclose(class_weights(tail, "train", beta=0.0), [1, 1, 1])


def test_bad_arguments(tail):
    with pytest.raises(ValueError, match="by must be"):
        repeat_factors(tail, "train", by="boxes")
    with pytest.raises(ValueError, match="beta"):
        class_weights(tail, "train", beta=1.0)
    with pytest.raises(ValueError, match="rank"):
        RepeatFactorSampler([1.0], num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=">= 0"):
        RepeatFactorSampler([1.0, -1.0])


FACTORS = np.array([1.0, 2.5, 0.3, math.sqrt(50), 1.75, 0.0])


def test_sampler_repeats_each_image_floor_or_ceil_and_r_on_average():
    sampler = RepeatFactorSampler(FACTORS, seed=3)
    epochs = 3000
    counts = np.zeros((epochs, len(FACTORS)))
    for e in range(epochs):
        sampler.set_epoch(e)
        indices = list(sampler)
        assert len(indices) == len(sampler)
        counts[e] = np.bincount(indices, minlength=len(FACTORS))
    assert ((counts == np.floor(FACTORS)) | (counts == np.floor(FACTORS) + 1)).all()
    frac = FACTORS - np.floor(FACTORS)
    tolerance = 5 * np.sqrt(frac * (1 - frac) / epochs) + 1e-12  # 5 standard errors of the mean
    assert (np.abs(counts.mean(axis=0) - FACTORS) <= tolerance).all()
    assert counts[:, 5].sum() == 0  # a factor of 0 never samples


def test_sampler_epochs_repeat_and_differ():
    a, b = RepeatFactorSampler(FACTORS, seed=1), RepeatFactorSampler(FACTORS, seed=1)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    b.set_epoch(5)
    assert list(a) != list(b)
    ordered = RepeatFactorSampler(FACTORS, seed=1, shuffle=False)
    ordered.set_epoch(4)
    assert list(ordered) == sorted(a)


@pytest.mark.parametrize("replicas", [2, 3, 4, 7])
def test_distributed_shards_partition_the_epoch(replicas):
    factors = np.random.default_rng(0).uniform(0.5, 4.0, 23)
    whole = RepeatFactorSampler(factors, seed=9)
    for epoch in range(5):
        whole.set_epoch(epoch)
        epoch_indices = list(whole)
        shards = []
        for rank in range(replicas):
            s = RepeatFactorSampler(factors, seed=9, num_replicas=replicas, rank=rank)
            s.set_epoch(epoch)
            shards.append(list(s))
            assert len(s) == len(shards[-1])
        assert len({len(s) for s in shards}) == 1
        total = math.ceil(len(epoch_indices) / replicas) * replicas
        assert sum(len(s) for s in shards) == total
        # DistributedSampler's own rule on the same epoch: padded with the first indices, rank::replicas
        for rank, shard in enumerate(shards):
            reference = torch.utils.data.DistributedSampler(
                range(len(epoch_indices)), num_replicas=replicas, rank=rank, shuffle=False
            )
            assert shard == [epoch_indices[j] for j in reference]
        union = sorted(i for s in shards for i in s)
        padded = sorted(epoch_indices + epoch_indices[: total - len(epoch_indices)])
        assert union == padded
        assert set(union) == set(epoch_indices)


def test_sampler_in_a_dataloader(tail):
    data = SegmentationDataset(tail, "train", label_only=True)
    sampler = RepeatFactorSampler(repeat_factors(data, threshold=0.5), seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=8, sampler=sampler)
    ids = [i for batch in loader for i in batch["image_id"]]
    assert len(ids) == len(sampler)
    assert ids.count("t000") in (7, 8)  # sqrt(50) = 7.07

"""SegmentationDataset and the transforms: labels against independent decodes, images against
Pillow, transforms against brute-force numpy, DataLoader workers against a plain loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import segdata  # noqa: E402
from segdata.convert import convert  # noqa: E402
from segdata.converters import ade20k, cityscapes  # noqa: E402
from segdata.errors import InputError, SelectionError  # noqa: E402
from segdata.synthetic.cityscapes import generate_cityscapes  # noqa: E402
from segdata.torch import (  # noqa: E402
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    SegmentationDataset,
    eval_transform,
    train_transform,
)
from segdata.torch.transforms import resize_label  # noqa: E402
from segdata.vocab import VocabEntry, Vocabulary  # noqa: E402
from tests.fixtures.ade20k import small_2021_dataset  # noqa: E402
from tests.torch.builders import Img, paeth_png, write_unified  # noqa: E402

# cityscapesScripts labels.py: labelId -> trainId (255 = ignored in training), typed out here so
# that the expected labels do not come from segdata's own class table
CITYSCAPES_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10}
CITYSCAPES_TRAIN_ID.update({24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18})


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """Generated Cityscapes (8 images of 96x192 with leftImg8bit PNGs), and its conversion."""
    work = tmp_path_factory.mktemp("city")
    src = generate_cityscapes(
        work / "src", 8, image_size=(96, 192), seed=3, polygons=False, png="fast", left_images="png"
    )
    convert(cityscapes, src, work / "ds", workers=1)
    return src, work / "ds"


def _rgb(seed: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def built(tmp_path):
    """Two train images and one val image; class 4 flagged ignore, class 3 in no vocabulary entry
    of the default-by-train-id vocabulary (train_id null)."""
    seg1 = np.array([[1, 1, 2, 2, 0], [1, 1, 2, 3, 3], [4, 4, 4, 3, 3]], np.uint8)
    seg2 = np.array([[2, 2, 1], [2, 2, 1], [0, 1, 1]], np.uint8)
    classes = [(1, "road", 0, False), (2, "car", 1, False), (3, "tree", None, False), (4, "void", None, True)]
    images = [
        Img("a", "train", seg1, {1: 1, 2: 2, 3: 3, 4: 4}, rgb=_rgb(1, 3, 5)),
        Img("b", "train", seg2, {1: 2, 2: 1}, rgb=_rgb(2, 3, 3), ext="jpg"),
        Img("v", "val", seg2, {1: 3, 2: 1}, rgb=_rgb(3, 3, 3)),
    ]
    return write_unified(tmp_path / "built", classes, images)


# ------------------------------------------------------------------------------ labels


def test_cityscapes_labels_equal_the_source_label_ids_through_the_official_train_ids(city):
    src, ds_path = city
    for split in ("train", "val"):
        data = SegmentationDataset(ds_path, split)
        assert data.num_classes == 19 and data.ignore_index == 255
        assert len(data) == len(list((src / "gtFine" / split).glob("*/*_labelIds.png")))
        for i, image_id in enumerate(data.image_ids):
            city_name = image_id.split("_")[0]
            label_ids = np.asarray(Image.open(src / "gtFine" / split / city_name / f"{image_id}_gtFine_labelIds.png"))
            expected = np.full(label_ids.shape, 255, np.int64)
            for label_id, train_id in CITYSCAPES_TRAIN_ID.items():
                expected[label_ids == label_id] = train_id
            sample = data[i]
            assert sample["image_id"] == image_id
            assert sample["label"].dtype == torch.int64 and sample["label"].shape == label_ids.shape
            np.testing.assert_array_equal(sample["label"].numpy(), expected)
            np.testing.assert_array_equal(data.read_label(i), expected)


def test_ade20k_labels_equal_a_pillow_decode_of_the_masks_through_the_segment_table(tmp_path):
    out = tmp_path / "ade"
    convert(ade20k, small_2021_dataset(tmp_path / "src"), out, workers=1)
    ds = segdata.open(out)
    seg = ds.segments[ds.segments["layer"] == "objects"]
    # a vocabulary that merges two classes and leaves others out; ignore_index -1
    names = dict(zip(ds.classes["class_id"], ds.classes["name"]))
    by_name = {v: k for k, v in names.items()}
    vocab = Vocabulary(
        (
            VocabEntry(0, "car+tree", (by_name["car"], by_name["tree"])),
            VocabEntry(1, "building", (by_name["building"],)),
        ),
        ignore_index=-1,
    )
    data = SegmentationDataset(ds, None, vocab, label_only=True)
    to_train = {by_name["car"]: 0, by_name["tree"]: 0, by_name["building"]: 1}
    mapped = 0
    assert data.image_ids == sorted(set(seg["image_id"]), key=list(ds.images["image_id"]).index)
    for i, image_id in enumerate(data.image_ids):
        split = ds.images.set_index("image_id").loc[image_id, "split"]
        mask = np.asarray(Image.open(out / "masks" / "objects" / split / f"{image_id}.png")).astype(np.int64)
        rows = seg[seg["image_id"] == image_id]
        class_of = dict(zip(rows["segment_id"], rows["class_id"]))
        table = np.array([to_train.get(class_of.get(sid, 0), -1) for sid in range(int(mask.max()) + 1)])
        expected = table[mask]
        sample = data[i]
        assert set(sample) == {"label", "image_id"}
        np.testing.assert_array_equal(sample["label"].numpy(), expected)
        mapped += int((expected >= 0).sum())
    assert mapped == 6 * 8 - 1 + 4 * 4  # image A: all but one unlabeled pixel; the val image: all tree


def test_default_vocabulary_is_the_train_ids_and_ignores_the_rest(built):
    data = SegmentationDataset(built, "train")
    assert data.class_names == ["road", "car"] and data.ignore_index == 255
    # image a: seg 1 -> class 1 road (0), 2 -> car (1), 3 -> tree (no train id), 4 -> void (ignore)
    expected = np.array([[0, 0, 1, 1, 255], [0, 0, 1, 255, 255], [255, 255, 255, 255, 255]])
    np.testing.assert_array_equal(data[0]["label"].numpy(), expected)
    assert data.read_label(0).dtype == np.uint8


def test_without_train_ids_the_default_vocabulary_is_every_class_not_ignored(tmp_path):
    seg = np.array([[1, 2], [3, 0]], np.uint8)
    classes = [(5, "a", None, False), (7, "b", None, True), (9, "c", None, False)]
    root = write_unified(tmp_path / "d", classes, [Img("x", "train", seg, {1: 9, 2: 7, 3: 5})])
    data = SegmentationDataset(root, "train", label_only=True)
    assert data.class_names == ["a", "c"]
    np.testing.assert_array_equal(data[0]["label"].numpy(), [[1, 255], [0, 255]])


def test_more_than_255_classes_use_65535_as_ignore(tmp_path):
    n = 300
    seg = np.arange(1, 13, dtype=np.uint8).reshape(3, 4)
    seg[0, 0] = 0
    classes = [(c, f"c{c}", None, False) for c in range(1, n + 1)]
    root = write_unified(tmp_path / "d", classes, [Img("x", "train", seg, {s: 290 + s // 2 for s in range(1, 13)})])
    data = SegmentationDataset(root, "train", label_only=True)
    assert data.num_classes == n and data.ignore_index == 65535
    expected = np.where(seg == 0, 65535, 289 + seg.astype(np.int64) // 2)
    np.testing.assert_array_equal(data[0]["label"].numpy(), expected)


# ------------------------------------------------------------------------------ images


def test_images_are_rgb_floats_of_the_files(built):
    data = SegmentationDataset(built, "train")
    png = np.asarray(Image.open(built / "images" / "train" / "a.png"))
    jpg = np.asarray(Image.open(built / "images" / "train" / "b.jpg").convert("RGB"))
    for i, rgb in enumerate((png, jpg)):
        image = data[i]["image"]
        assert image.dtype == torch.float32 and image.shape == (3, *rgb.shape[:2]) and image.is_contiguous()
        np.testing.assert_allclose(image.numpy(), rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_grey_and_rgba_pngs_become_rgb(tmp_path):
    seg = np.ones((2, 3), np.uint8)
    root = write_unified(
        tmp_path / "d", [(1, "a", 0, False)], [Img("g", "train", seg, {1: 1}), Img("r", "train", seg, {1: 1})]
    )
    grey = np.array([[0, 100, 255], [7, 8, 9]], np.uint8)
    rgba = np.random.default_rng(0).integers(0, 256, (2, 3, 4), dtype=np.uint8)
    (root / "images").mkdir()
    Image.fromarray(grey).save(root / "images" / "g.png")
    Image.fromarray(rgba).save(root / "images" / "r.png")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(root / "images.parquet")
    table = table.set_column(table.schema.get_field_index("file"), "file", pa.array(["images/g.png", "images/r.png"]))
    pq.write_table(table, root / "images.parquet")
    data = SegmentationDataset(root, "train")
    np.testing.assert_allclose(data[0]["image"].numpy(), np.stack([grey] * 3) / 255.0, atol=1e-6)
    np.testing.assert_allclose(data[1]["image"].numpy(), rgba[:, :, :3].transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_a_missing_image_file_is_an_error_naming_it(built):
    (built / "images" / "train" / "a.png").unlink()
    data = SegmentationDataset(built, "train")
    with pytest.raises(InputError, match=r"a\.png.*image file not found"):
        data[0]
    assert data[1]["image"].shape == (3, 3, 3)
    # label_only never opens the image
    assert SegmentationDataset(built, "train", label_only=True)[0]["label"].shape == (3, 5)


def test_an_image_without_a_file_is_an_error_naming_it(tmp_path):
    root = write_unified(tmp_path / "d", [(1, "a", 0, False)], [Img("x", "train", np.ones((2, 2), np.uint8), {1: 1})])
    with pytest.raises(InputError, match="image x has no image file"):
        SegmentationDataset(root, "train")[0]


def test_an_image_of_another_size_than_its_mask_is_an_error(built):
    Image.fromarray(_rgb(0, 4, 5)).save(built / "images" / "train" / "a.png")
    with pytest.raises(InputError, match=r"a\.png: image is 5x4 pixels, its annotation 5x3"):
        SegmentationDataset(built, "train")[0]


def test_unknown_split_or_layer(built):
    with pytest.raises(SelectionError, match="no split 'test'"):
        SegmentationDataset(built, "test")
    with pytest.raises(SelectionError, match="no layer 'parts-1'"):
        SegmentationDataset(built, "train", layer="parts-1")


def test_the_dataset_pickles_without_tables(city):
    data = SegmentationDataset(city[1], "train")
    blob = pickle.dumps(data)
    assert b"DataFrame" not in blob and b"pyarrow" not in blob
    copy = pickle.loads(blob)
    assert torch.equal(copy[2]["label"], data[2]["label"])


# ------------------------------------------------------------------------------ transforms


def _sample(h=7, w=9, values=(0, 3, 7, 255), seed=0):
    rng = np.random.default_rng(seed)
    label = torch.from_numpy(rng.choice(np.array(values), size=(h, w)).astype(np.int64))
    image = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    return {"image": image, "label": label, "image_id": "x"}


def _nearest_numpy(label: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = np.minimum(((np.arange(h) + 0.5) * label.shape[0] / h).astype(int), label.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * label.shape[1] / w).astype(int), label.shape[1] - 1)
    return label[rows][:, cols]


@pytest.mark.parametrize("size", [(3, 4), (7, 9), (16, 30), (5, 20)])
def test_resize_label_is_nearest(size):
    label = _sample()["label"]
    out = resize_label(label, size)
    np.testing.assert_array_equal(out.numpy(), _nearest_numpy(label.numpy(), *size))


def test_random_scale_and_crop_keep_label_values_and_pad_with_ignore():
    s = _sample(values=(0, 3, 7))
    original = set(s["label"].unique().tolist())
    t = Compose([RandomScale((0.3, 3.0)), RandomCrop((20, 25), ignore_index=255, pad_value=0.0)])
    g = torch.Generator().manual_seed(0)
    padded_seen = False
    for _ in range(40):
        out = t(dict(s), generator=g)
        assert out["label"].shape == (20, 25) and out["image"].shape == (3, 20, 25)
        assert set(out["label"].unique().tolist()) <= original | {255}
        pad = out["label"] == 255
        if pad.any():
            padded_seen = True
            assert (out["image"][:, pad] == 0).all()  # image padded with 0 exactly where the label is
    assert padded_seen


def test_crop_padding_is_at_the_bottom_right_with_the_mean():
    s = _sample(h=4, w=5)
    out = RandomCrop((6, 8), ignore_index=99, pad_value="mean")(s)
    label = out["label"].numpy()
    np.testing.assert_array_equal(label[:4, :5], s["label"].numpy())
    assert (label[4:, :] == 99).all() and (label[:, 5:] == 99).all()
    np.testing.assert_array_equal(out["image"][:, :4, :5].numpy(), s["image"].numpy())
    assert out["image"][:, 5, 7].tolist() == [round(0.485 * 255), round(0.456 * 255), round(0.406 * 255)]


def test_crop_is_a_window_of_the_sample():
    s = _sample(h=10, w=12)
    g = torch.Generator().manual_seed(5)
    out = RandomCrop((4, 6), ignore_index=255)(s, generator=g)
    full = s["label"].numpy()
    windows = [
        (r, c) for r in range(7) for c in range(7) if np.array_equal(full[r : r + 4, c : c + 6], out["label"].numpy())
    ]
    assert windows
    r, c = windows[0]
    np.testing.assert_array_equal(out["image"].numpy(), s["image"].numpy()[:, r : r + 4, c : c + 6])


def test_flip_and_normalize():
    s = _sample()
    out = RandomHorizontalFlip(p=1.0)(s)
    np.testing.assert_array_equal(out["label"].numpy(), s["label"].numpy()[:, ::-1])
    np.testing.assert_array_equal(out["image"].numpy(), s["image"].numpy()[:, :, ::-1])
    assert RandomHorizontalFlip(p=0.0)(s) is s
    norm = Normalize()(s)["image"]
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_allclose(norm.numpy(), (s["image"].numpy() / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    assert norm.dtype == torch.float32


def test_resize_keeps_or_resizes_the_label():
    s = _sample(h=6, w=9)
    out = Resize(3)(s)  # shorter side 3
    assert out["image"].shape == (3, 3, 5) and out["label"].shape == (3, 5)
    np.testing.assert_array_equal(out["label"].numpy(), _nearest_numpy(s["label"].numpy(), 3, 5))
    kept = eval_transform(size=(12, 18))(s)
    assert kept["image"].shape == (3, 12, 18) and kept["label"].shape == (6, 9)


def test_train_transform_through_the_dataset(city):
    data = SegmentationDataset(city[1], "train", transform=train_transform(64), seed=7)
    sample = data[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert sample["label"].shape == (64, 64) and sample["label"].dtype == torch.int64
    values = set(sample["label"].unique().tolist())
    assert values <= set(range(19)) | {255}
    # the dataset's ignore index is filled in; the caller's transform is left as it was
    t = train_transform(64)
    SegmentationDataset(city[1], "train", transform=t)
    assert t.transforms[1].ignore_index is None


def test_seeded_samples_repeat_and_change_with_the_epoch(city):
    data = SegmentationDataset(city[1], "train", transform=train_transform(48), seed=1)
    first = data[3]
    data[1]  # another sample in between changes nothing
    again = data[3]
    assert torch.equal(first["label"], again["label"]) and torch.equal(first["image"], again["image"])
    data.set_epoch(1)
    later = [data[3] for _ in range(1)][0]
    assert not torch.equal(first["image"], later["image"])


def test_dataloader_with_two_workers_gives_the_plain_loop(city):
    data = SegmentationDataset(city[1], "train", transform=train_transform(40), seed=11)
    plain = [data[i] for i in range(len(data))]
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2, shuffle=False)
    got = [s for batch in loader for s in _unbatch(batch)]
    assert len(got) == len(plain)
    for a, b in zip(plain, got):
        assert a["image_id"] == b["image_id"]
        assert torch.equal(a["label"], b["label"]) and torch.equal(a["image"], b["image"])
    # without transforms too
    data = SegmentationDataset(city[1], "val")
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2)
    for i, s in enumerate(loader):
        assert torch.equal(s["image"], data[i]["image"]) and torch.equal(s["label"], data[i]["label"])


def _unbatch(batch):
    for i in range(len(batch["image_id"])):
        yield {"image": batch["image"][i], "label": batch["label"][i], "image_id": batch["image_id"][i]}


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("image_dtype", [torch.uint8, torch.float32])
def test_paeth_filtered_photographs_decode_as_pillow_does(built, channels, image_dtype):
    pixels = np.random.default_rng(channels).integers(0, 256, (3, 5, channels), dtype=np.uint8)
    path = built / "images" / "train" / "a.png"
    path.write_bytes(paeth_png(pixels))
    pillow = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(pillow, pixels[:, :, :3])
    data = SegmentationDataset(built, "train", image_dtype=image_dtype)
    image = data[0]["image"]
    assert image.dtype == image_dtype and image.is_contiguous()
    expected = pillow.transpose(2, 0, 1)
    if image_dtype == torch.float32:
        expected = expected.astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(image.numpy(), expected)
    np.testing.assert_array_equal(data.read_image(0), pillow)  # the (H, W, 3) path transforms take


# ------------------------------------------------------------------------------ batches


@pytest.mark.parametrize("image_dtype", [torch.float32, torch.uint8])
def test_loader_batches_equal_the_default_collation(city, image_dtype):
    from segdata.torch import loader

    data = SegmentationDataset(city[1], "train", image_dtype=image_dtype)
    expected = torch.utils.data.default_collate([data[i] for i in range(3)])
    batch = next(iter(loader(data, 3)))  # in this process: one batch written in place
    assert batch["image_id"] == expected["image_id"]
    for key in ("image", "label"):
        assert batch[key].dtype == expected[key].dtype and torch.equal(batch[key], expected[key])
    assert data._batches is None  # the loader ran a copy; a plain DataLoader reads sample by sample
    assert all(s["image"]._base is None for s in data.__getitems__([0, 1]))
    one = next(iter(loader(data, None)))  # batch_size None: samples one by one, as a DataLoader gives them
    assert one["image_id"] == data.image_ids[0] and torch.equal(one["image"], data[0]["image"])


def _pool_ranges(batches) -> list[tuple[int, int]]:
    return [(storage.data_ptr(), storage.data_ptr() + storage.nbytes()) for storage, _ in batches._pools.values()]


def test_loader_workers_reuse_their_slots_and_never_overwrite_a_held_batch(city):
    from segdata.torch import loader

    data = SegmentationDataset(city[1], "train")
    plain = [data[i] for i in range(len(data))]
    # one worker writing a batch has at most prefetch_factor (2) - 1 more sent, one in the loop's
    # hands and, while the loop waits for the next, the one before in enumerate()'s reused tuple:
    # 4 slots suffice when each batch is dropped before the next; 3 epochs reuse each slot
    batches = loader(data, 1, num_workers=1, slots=4, persistent_workers=True)
    pointers = []
    for _ in range(3):
        for i, batch in enumerate(batches):
            assert batch["image_id"] == [data.image_ids[i]]
            assert torch.equal(batch["image"][0], plain[i]["image"])
            assert torch.equal(batch["label"][0], plain[i]["label"])
            pointers.append(batch["label"].data_ptr())
            del batch
    ranges = _pool_ranges(batches)
    assert len(ranges) == 1 and all(any(lo <= p < hi for lo, hi in ranges) for p in pointers)
    assert len(set(pointers)) <= 4 < len(pointers)
    # every batch held: the workers run out of free slots and write the rest elsewhere, never
    # into a slot a held batch views
    held = list(loader(data, 1, num_workers=2, slots=1))
    for i, batch in enumerate(held):
        assert torch.equal(batch["image"][0], plain[i]["image"]) and torch.equal(batch["label"][0], plain[i]["label"])
    assert len({b["label"].data_ptr() for b in held}) == len(held)


def test_loader_copies_transformed_crops_into_its_slots(city):
    from segdata.torch import loader

    data = SegmentationDataset(city[1], "train", transform=train_transform(40), seed=11)
    plain = [data[i] for i in range(len(data))]
    batches = loader(data, 2, num_workers=2)
    got = []
    for batch in batches:
        assert batch["image"].shape[1:] == (3, 40, 40) and batch["label"].dtype == torch.int64
        got.extend(_unbatch(batch))
    assert [s["image_id"] for s in got] == data.image_ids
    for a, b in zip(plain, got):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    ranges = _pool_ranges(batches)  # the crops came in the workers' slots
    assert len(ranges) == 2 and all(any(lo <= s["label"].data_ptr() < hi for lo, hi in ranges) for s in got)


def test_loader_under_the_file_system_sharing_strategy(city):
    """torch's other sharing strategy (shared memory by file name): the pools and the fallback
    still give the plain loop's tensors."""
    from segdata.torch import loader

    data = SegmentationDataset(city[1], "train")
    plain = [data[i] for i in range(len(data))]
    before = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        held = list(loader(data, 2, num_workers=2, slots=1))  # held: the second batch of a worker falls back
    finally:
        torch.multiprocessing.set_sharing_strategy(before)
    got = [s for batch in held for s in _unbatch(batch)]
    assert [s["image_id"] for s in got] == data.image_ids
    for a, b in zip(plain, got):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


@pytest.mark.parametrize("memfd", [True, False])
def test_a_batch_outside_the_pool_is_one_shared_storage_with_or_without_memfd(city, monkeypatch, memfd):
    """Inside a worker (faked here) without free slots: a memfd written by pwrite, or torch's shared
    memory written through its mapping; the same tensors as the plain loop, in one shared storage."""
    from segdata.torch import batching

    data = SegmentationDataset(city[1], "train", image_dtype=torch.uint8)
    plain = [data[i] for i in (1, 2, 3)]
    data._batches = batching.WorkerBatches(0)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    if not memfd:
        monkeypatch.setattr(batching, "_memfd_sharing", lambda: False)
    for _ in range(2):  # the second batch reuses the scratch buffers
        batch = batching.collate(data.__getitems__([1, 2, 3]))
        assert batch["image"].is_shared() and batch["label"].is_shared()
        assert batch["image"].untyped_storage().data_ptr() == batch["label"].untyped_storage().data_ptr()
        for k, s in enumerate(plain):
            assert torch.equal(batch["image"][k], s["image"]) and torch.equal(batch["label"][k], s["label"])
    assert bool(data._batches._scratch) == memfd
    copied = pickle.loads(pickle.dumps(data._batches))
    assert copied.slots == 0 and copied._pool is None and copied._scratch == {}


def test_a_pool_that_cannot_be_allocated_leaves_the_batches_to_memory_files(city, monkeypatch):
    """/dev/shm too small for the slots (Docker's default is 64 MB): the worker goes on without a
    pool, each batch in a memory file."""
    from segdata.torch import batching

    data = SegmentationDataset(city[1], "train")
    plain = [data[i] for i in (0, 1)]
    data._batches = batching.WorkerBatches(4)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())

    def full(nbytes):
        raise RuntimeError("unable to allocate shared memory(shm) for file: No space left on device")

    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", staticmethod(full))
    batch = batching.collate(data.__getitems__([0, 1]))
    assert data._batches.slots == 0 and data._batches._pool is None
    for k, s in enumerate(plain):
        assert torch.equal(batch["image"][k], s["image"]) and torch.equal(batch["label"][k], s["label"])


def test_a_batch_of_mixed_sizes_is_read_sample_by_sample(built):
    from segdata.torch import batching, loader

    data = SegmentationDataset(built, "train")  # a.png is 3x5, b.jpg 3x3
    data._batches = batching.WorkerBatches(2)
    samples = data.__getitems__([0, 1])
    assert [s["image"].shape for s in samples] == [(3, 3, 5), (3, 3, 3)]
    with pytest.raises(RuntimeError):  # default_collate cannot stack them: as without segdata
        next(iter(loader(SegmentationDataset(built, "train"), 2)))


def test_a_missing_image_in_a_batch_is_an_error_naming_it(city, tmp_path):
    from segdata.torch import batching

    data = SegmentationDataset(city[1], "train")
    data._batches = batching.WorkerBatches(2)
    data.image_paths[1] = str(tmp_path / "gone_leftImg8bit.png")  # the shared fixture's files stay
    with pytest.raises(InputError, match=r"gone_leftImg8bit\.png.*image file not found"):
        data.__getitems__([0, 1])
    # in a worker (faked) the slot the batch was being written into is free again
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.utils.data, "get_worker_info", lambda: object())
        with pytest.raises(InputError, match="gone_leftImg8bit"):
            data.__getitems__([0, 1])
        assert data._batches._pool is not None and not data._batches._pool.flags.any()


def test_import_segdata_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, segdata, segdata.cli, segdata.vocab, segdata.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    code = "import sys, segdata.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_sixteen_bit_segment_maps(tmp_path):
    seg = np.arange(1, 601, dtype=np.uint16).reshape(20, 30)
    seg[0, 0] = 0
    root = write_unified(
        tmp_path / "d",
        [(1, "odd", 1, False), (2, "even", 0, False)],
        [Img("x", "train", seg, {s: 1 + s % 2 for s in range(1, 601)})],
    )
    data = SegmentationDataset(root, "train", label_only=True)
    # segment s has class 1 + s % 2: odd ids class 2 (train id 0), even ids class 1 (train id 1)
    expected = np.where(seg == 0, 255, np.where(seg % 2 == 1, 0, 1))
    np.testing.assert_array_equal(data[0]["label"].numpy(), expected)

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Converting Cityscapes or COCO for mmsegmentation or detectron2
#
# Each training framework reads its own layout and its own id space, and the two most common
# silent bugs are an off-by-one in the class ids (`reduce_zero_label` set wrong) and an ignore
# value the loss does not ignore. This notebook goes from the data as it ships to files a trainer
# reads, with the command line, and checks the result pixel by pixel:
#
# | from | for | `segdata export --to` | ids in the files |
# |---|---|---|---|
# | Cityscapes | mmsegmentation | `label-png --vocab` (the 19 trainIds) | trainId 0..18, 255 = ignore |
# | Cityscapes | detectron2 (panoptic) | `coco-panoptic --convention cityscapes` | as `csCreatePanopticImgs` |
# | COCO | detectron2 (panoptic) | `coco-panoptic` | COCO category ids |
# | COCO | mmsegmentation | `label-png` | 0..K-1 in category order, 255 = unlabeled |
#
# The data here is generated in the exact layouts of the real releases (`gtFine/`, `leftImg8bit/`,
# `annotations/instances_*.json`); point the commands at your own copies instead.

# %%
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import segdata
from segdata.synthetic import generate_cityscapes, generate_coco_instances
from segdata.vocab import read_vocab

# Everything is written here (never into the repository); set SEGDATA_EXAMPLE_OUT to keep it.
OUT = Path(os.environ.get("SEGDATA_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="segdata-training-"))
OUT.mkdir(parents=True, exist_ok=True)
N_CITYSCAPES = 12  # image i is in val when i % 6 == 1
N_COCO = (20, 8)  # train, val images
print("writing into", OUT)


def run(*args: str) -> str:
    """Run `segdata ARGS...` (the command line a user types), print and return its output."""
    cmd = [sys.executable, "-m", "segdata", *map(str, args)]
    print("$ segdata", " ".join(map(str, args)))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout.rstrip())
    if proc.returncode:
        raise RuntimeError(f"segdata {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


# %% [markdown]
# ## Cityscapes
#
# `gtFine/<split>/<city>/*_gtFine_labelIds.png` hold the 34 labelIds; training uses the 19
# **trainIds** (road = 0 ... bicycle = 18), every other class (ego vehicle, rectification border,
# ...) is 255 and ignored. `segdata convert` keeps all classes and records each one's trainId;
# `segdata vocab --from-train-ids` writes the 19-class vocabulary.

# %%
generate_cityscapes(OUT / "cityscapes", N_CITYSCAPES, image_size=(128, 256), left_images="png", seed=0)
run("convert", "cityscapes", OUT / "cityscapes", OUT / "cs-unified", "--overwrite")
run("vocab", OUT / "cs-unified", "--from-train-ids", "-o", OUT / "cityscapes19.json")

# %% [markdown]
# ### For mmsegmentation: label PNGs in trainIds
#
# One 8-bit PNG per image, pixel = trainId, 255 = ignore, in mmsegmentation's custom-dataset
# layout (`img_dir/<split>`, `ann_dir/<split>`, same file stem; images are symlinks).

# %%
run("export", OUT / "cs-unified", "--to", "label-png", OUT / "cs-mmseg", "--vocab", OUT / "cityscapes19.json")

# %% [markdown]
# What the mmsegmentation (1.x) config says. `reduce_zero_label=False`: 0 is a real class (road),
# and the unlabeled pixels are already 255. (`reduce_zero_label=True` is for files where 0 means
# "other", such as ADEChallengeData2016's raw annotations: it subtracts 1 from every label and turns
# 0 into 255; applied to these files it would shift every class by one and train road as ignore.)


# %%
def mmseg_config(root: Path, suffix: str = ".png") -> str:
    vocab = read_vocab(root / "vocab.json")
    palette = [[int(e.color[i : i + 2], 16) for i in (1, 3, 5)] if e.color else [0, 0, 0] for e in vocab.entries]
    return f"""\
dataset_type = "BaseSegDataset"
data_root = "{root}"
metainfo = dict(
    classes={tuple(vocab.names)!r},
    palette={palette!r},
)
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, metainfo=metainfo,
    img_suffix="{suffix}", seg_map_suffix=".png", reduce_zero_label=False,
    data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train")))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, metainfo=metainfo,
    img_suffix="{suffix}", seg_map_suffix=".png", reduce_zero_label=False,
    data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val")))
model = dict(
    decode_head=dict(num_classes={vocab.num_classes}, ignore_index={vocab.ignore_index}),
    auxiliary_head=dict(num_classes={vocab.num_classes}, ignore_index={vocab.ignore_index}))
"""


print(mmseg_config(OUT / "cs-mmseg"))

# %% [markdown]
# Check: at every pixel, the exported value is the trainId of the pixel's class in the unified
# dataset (`classes.parquet` keeps each Cityscapes class's labelId as `source_id` and its `train_id`).

# %%
cs = segdata.open(OUT / "cs-unified")
train_id = cs.classes.set_index("class_id")["train_id"].fillna(255).astype(int)
lut = np.full(int(cs.classes["class_id"].max()) + 1, 255, np.uint8)
lut[train_id.index] = train_id.to_numpy()
for record in cs:
    label = np.asarray(Image.open(OUT / "cs-mmseg" / "ann_dir" / record.split / f"{record.image_id}.png"))
    assert (label == lut[record.semantic()]).all(), record.image_id
values = np.unique(label)
print(f"{len(cs)} label PNGs match; values in the last one: {values.tolist()}")

# %% [markdown]
# ### For detectron2: Cityscapes panoptic
#
# detectron2's Cityscapes panoptic datasets (`cityscapes_fine_panoptic_train`/`_val`) read the
# files cityscapesScripts' `csCreatePanopticImgs` writes: `cityscapes_panoptic_<split>.json` and
# `cityscapes_panoptic_<split>/*_gtFine_panoptic.png` (segment id = R + 256 G + 256^2 B; stuff
# segments have their labelId as id, instances labelId * 1000 + n; categories are labelIds).
# `--convention cityscapes` writes exactly that.

# %%
run("export", OUT / "cs-unified", "--to", "coco-panoptic", OUT / "cs-detectron2", "--convention", "cityscapes")
panoptic = json.loads((OUT / "cs-detectron2" / "cityscapes_panoptic_train.json").read_text())
categories = panoptic["categories"]
things = [c for c in categories if c["isthing"]]
print(
    f"""\
# copy {OUT / "cs-detectron2"}/* into $DETECTRON2_DATASETS/cityscapes/gtFine/ (next to leftImg8bit/), then:
cfg.DATASETS.TRAIN = ("cityscapes_fine_panoptic_train",)
cfg.DATASETS.TEST = ("cityscapes_fine_panoptic_val",)
cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = {len(categories)}  # the 19 trainIds
cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
cfg.MODEL.ROI_HEADS.NUM_CLASSES = {len(things)}  # {", ".join(c["name"] for c in things)}
"""
)

# %% [markdown]
# Check: decode one panoptic PNG and compare each segment's category with the labelIds file it
# came from.


# %%
def read_panoptic(path: Path) -> np.ndarray:
    """Segment id per pixel of a panoptic PNG: R + 256 G + 256^2 B (0 = void)."""
    rgb = np.asarray(Image.open(path), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


annotation = panoptic["annotations"][0]
pan = read_panoptic(OUT / "cs-detectron2" / "cityscapes_panoptic_train" / annotation["file_name"])
city = annotation["image_id"].split("_")[0]
label_ids = np.asarray(
    Image.open(OUT / "cityscapes" / "gtFine" / "train" / city / f"{annotation['image_id']}_gtFine_labelIds.png")
)
for s in annotation["segments_info"]:
    assert (label_ids[pan == s["id"]] == s["category_id"]).all(), s
    assert (pan == s["id"]).sum() == s["area"], s
print(f"{annotation['image_id']}: {len(annotation['segments_info'])} segments match the labelIds")

# %% [markdown]
# ## COCO
#
# `annotations/instances_<split>2017.json` holds polygons and RLEs of 80 thing categories with
# ids 1..90 (with gaps). `segdata convert` rasterises them (later annotations drawn over earlier
# ones, as panopticapi does); the class ids of the unified dataset are the COCO category ids.

# %%
generate_coco_instances(OUT / "coco", N_COCO[0], 6 * N_COCO[0], image_size=(96, 128), split="train", seed=0)
generate_coco_instances(OUT / "coco", N_COCO[1], 6 * N_COCO[1], image_size=(96, 128), split="val", seed=1)
run("convert", "coco", OUT / "coco", OUT / "coco-unified", "--overwrite")

# %% [markdown]
# ### For detectron2: COCO panoptic
#
# panopticapi's format: `annotations/panoptic_<split>.json` and one RGB PNG per image.
# `register_coco_panoptic` needs the category ids mapped to contiguous ids (the model's outputs).

# %%
run("export", OUT / "coco-unified", "--to", "coco-panoptic", OUT / "coco-detectron2")
panoptic = json.loads((OUT / "coco-detectron2" / "annotations" / "panoptic_train.json").read_text())
categories = panoptic["categories"]
contiguous = {c["id"]: i for i, c in enumerate(categories)}
thing_ids = {c["id"]: contiguous[c["id"]] for c in categories if c["isthing"]}
print(
    f"""\
from detectron2.data.datasets import register_coco_panoptic
meta = dict(
    thing_classes={[c["name"] for c in categories if c["isthing"]][:4]} + [...],  # {len(thing_ids)} things
    stuff_classes=[c["name"] for c in categories],  # every category, in contiguous order
    thing_dataset_id_to_contiguous_id={dict(list(thing_ids.items())[:4])} | {{...}},
    stuff_dataset_id_to_contiguous_id={dict(list(contiguous.items())[:4])} | {{...}},
)
register_coco_panoptic(
    "my_coco_panoptic_train", meta,
    image_root="{OUT / "coco" / "train2017"}",
    panoptic_root="{OUT / "coco-detectron2" / "annotations" / "panoptic_train"}",
    panoptic_json="{OUT / "coco-detectron2" / "annotations" / "panoptic_train.json"}",
)
cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = {len(categories)}
cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
cfg.MODEL.ROI_HEADS.NUM_CLASSES = {len(thing_ids)}
"""
)

# %% [markdown]
# Check: every panoptic segment's category is the class of its pixels in the unified dataset, and
# the pixels outside every segment are unlabeled there.

# %%
coco = segdata.open(OUT / "coco-unified")
checked = 0
for annotation in panoptic["annotations"]:
    pan = read_panoptic(OUT / "coco-detectron2" / "annotations" / "panoptic_train" / annotation["file_name"])
    semantic = coco.semantic(str(annotation["image_id"]))
    for s in annotation["segments_info"]:
        assert (semantic[pan == s["id"]] == s["category_id"]).all(), (annotation["image_id"], s)
    assert (semantic[pan == 0] == 0).all()
    checked += 1
print(f"{checked} panoptic PNGs match the unified dataset")

# %% [markdown]
# ### For mmsegmentation: COCO as label PNGs
#
# Without a vocabulary, `label-png` keeps every class in class-id order: the 80 categories become
# 0..79 and the background (no annotation) 255. (mmsegmentation's COCO-Stuff configs are the same
# idea with 171 classes.)

# %%
run("export", OUT / "coco-unified", "--to", "label-png", OUT / "coco-mmseg")
print(mmseg_config(OUT / "coco-mmseg", suffix=".jpg"))
vocab = read_vocab(OUT / "coco-mmseg" / "vocab.json")
lut = vocab.lookup(coco.classes)
for record in coco:
    label = np.asarray(Image.open(OUT / "coco-mmseg" / "ann_dir" / record.split / f"{record.image_id}.png"))
    assert (label == lut[record.semantic()]).all(), record.image_id
print(f"{len(coco)} label PNGs match; {vocab.num_classes} classes, first: {vocab.names[:5]}")

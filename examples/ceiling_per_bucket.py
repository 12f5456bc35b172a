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
# # How far is my model from the annotator ceiling, per frequency bucket?
#
# A model's mIoU of 0.35 says little on its own. Two annotators labelling the same ADE20K images
# agree on only 82.4% of the pixels, so no model can be scored much above what a second
# annotator would get against the first: that is the **ceiling**. And it is not the same for every
# class: rare classes are rare in the annotators' agreement too. This notebook puts a model's
# per-bucket mIoU (LVIS buckets: rare = 1-10 training images, common = 11-100, frequent > 100)
# next to the ceiling of the same bucket, with bootstrap intervals over images:
#
# 1. a dataset (generated in the ADE20K 2021 layout) and a consistency set: the same kind of
#    images annotated twice (here a simulated re-annotation calibrated on the published study);
# 2. the consistency analysis measures the ceiling and writes the ceiling file;
# 3. a "model": predictions made by corrupting the ground truth, more on rare classes, written
#    as label PNGs in train ids (swap in your own model's PNGs);
# 4. `segdata.eval.evaluate(..., by_frequency=True, ceiling=...)`, then a table and a plot.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

import segdata
from segdata.analyses import consistency
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.eval import EvalSpace, evaluate
from segdata.eval.buckets import training_frequencies
from segdata.synthetic import generate_ade20k_2021, generate_ade20k_consistency

try:  # a rich table in a notebook, plain text in a terminal
    from IPython.display import display
except ImportError:
    display = print
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 12)

# Everything is written here (never into the repository); set SEGDATA_EXAMPLE_OUT to keep it.
OUT = Path(os.environ.get("SEGDATA_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="segdata-ceiling-"))
OUT.mkdir(parents=True, exist_ok=True)
N_IMAGES = 240  # a quarter of them validation; >100 training images so that "frequent" exists
N_CONSISTENCY = 12  # ADE20K's consistency set has 61 images
N_CLASSES = 100
SEED = 0
print("writing into", OUT)

# %% [markdown]
# ## 1. The dataset and the consistency set
#
# Both come from the same class vocabulary (same `n_classes` and `seed`), as the real ADE20K
# consistency images share ADE20K's names. The evaluation matches the ceiling's classes to the
# dataset's by name.

# %%
release = generate_ade20k_2021(
    OUT / "source",
    N_IMAGES,
    image_size=((96, 128), (144, 192)),
    n_classes=N_CLASSES,
    parts=False,
    val_fraction=0.25,
    seed=SEED,
    workers=2,
)
convert(ade20k, release, OUT / "ade", name="ade", overwrite=True)
ds = segdata.open(OUT / "ade")
print(ds, ds.images["split"].value_counts().to_dict())

generated = generate_ade20k_consistency(
    OUT / "consistency-source",
    N_CONSISTENCY,
    image_size=(384, 512),
    n_classes=N_CLASSES,
    parts=False,
    seed=SEED,
    workers=2,
)
convert(ade20k, generated.path, OUT / "consistency", name="consistency", overwrite=True)
print(f"the simulated re-annotation changed {1 - generated.agreement:.1%} of the labelled pixels")

# %% [markdown]
# ## 2. The ceiling
#
# `consistency.compare` scores the second annotation (`reannotation` layer) against the first
# (`objects`), as if it were a model: pixel agreement, mIoU, per class and per frequency bucket,
# with intervals over images. `write_ceiling` keeps what an evaluation needs in a small JSON file
# (the CLI: `segdata analyze consistency DATASET --layers objects,reannotation --ceiling-out FILE`).

# %%
agreement = consistency.compare(OUT / "consistency", layers="objects,reannotation", bootstrap=200, seed=SEED)
ceiling_path = consistency.write_ceiling(OUT / "ceiling.json", agreement)
print(
    f"annotators agree on {agreement.figures['pixel_agreement']:.1%} of the pixels; "
    f"the second annotation's mIoU against the first is {agreement.figures['miou']:.3f}"
)
print("written", ceiling_path)

# %% [markdown]
# ## 3. A model's predictions
#
# A stand-in for a real network, with the failure a long-tailed training set produces: a class
# seen in few training images is often not predicted at all (its pixels go to the most frequent
# class), a frequent class rarely; and every boundary is a few pixels off.
#
# Predictions are label PNGs named `<image_id>.png` holding **train ids**: the evaluated classes
# `0..K-1` of the dataset's vocabulary (`EvalSpace`; for full ADE20K without a vocabulary, every
# class in `class_id` order), 255 = no prediction.

# %%
space = EvalSpace.build(ds, "train")
train_freq = training_frequencies(ds, space)  # training images per evaluated class
train_images = train_freq["train_images"].to_numpy(dtype=float)
miss_rate = np.clip(0.95 - 0.3 * np.log10(np.maximum(train_images, 1)), 0.05, 0.95)
head = int(np.argmax(train_images))  # the class a confused model falls back on
print(f"{space.num_classes} evaluated classes; fallback class: {space.names[head]}")

rng = np.random.default_rng(SEED)
pred_dir = OUT / "predictions"
pred_dir.mkdir(exist_ok=True)
val = ds.images[ds.images["split"] == "val"]
for image_id in val["image_id"]:
    gt = space.gt_lut[ds.semantic(image_id)]  # train id per pixel, -1 = not evaluated
    pred = np.where(gt >= 0, gt, head)
    for c in np.unique(gt[gt >= 0]):
        if rng.random() < miss_rate[c]:
            pred[gt == c] = head
    pred = np.roll(pred, 3, axis=1)  # boundaries 3 px off
    Image.fromarray(pred.astype(np.uint8)).save(pred_dir / f"{image_id}.png")
print(f"{len(val)} prediction PNGs in {pred_dir}")

# %% [markdown]
# ## 4. Evaluation by frequency, against the ceiling
#
# `by_frequency=True` buckets the evaluated classes by their training images (LVIS rule, counted
# on the training split); `ceiling=` adds the annotators' mIoU over the same classes of each
# bucket, and the difference with its interval. The CLI equivalent:
# `segdata eval DATASET PRED_DIR --by-frequency --ceiling ceiling.json --json`.

# %%
result = evaluate(ds, pred_dir, by_frequency=True, ceiling=ceiling_path, bootstrap=200, seed=SEED)
report = result.to_dict()
print(f"model mIoU {report['miou']:.3f} (95% CI {report['ci']['miou'][0]:.3f}-{report['ci']['miou'][1]:.3f})")
print(f"ceiling mIoU {report['ceiling']['miou']:.3f} over the {report['ceiling']['classes_covered']} classes it covers")

# %% [markdown]
# One row per bucket: the model, the ceiling on the classes of that bucket that the consistency
# set covers, and how far below the ceiling the model is. An interval of the difference that
# excludes 0 says the gap is not noise of the image sample.


# %%
def rounded(interval):
    return None if interval is None else [round(v, 3) for v in interval]


rows = []
for b in report["buckets"]:
    rows.append(
        {
            "bucket": b["name"],
            "classes": b["classes"],
            "model mIoU": b["miou"],
            "model CI": rounded(b["ci"]),
            "ceiling mIoU": b.get("ceiling_miou"),
            "ceiling classes": b.get("ceiling_classes"),
            "model - ceiling": b.get("difference"),
            "difference CI": rounded(b.get("difference_ci")),
        }
    )
table = pd.DataFrame(rows).set_index("bucket")
table.to_csv(OUT / "buckets.csv")
display(table.round(3))

# %%
fig, ax = plt.subplots(figsize=(6, 4))
x = np.arange(len(table))
model = table["model mIoU"].astype(float).to_numpy()
low, high = (np.array([ci[i] if ci else np.nan for ci in table["model CI"]]) for i in (0, 1))
ax.bar(x, model, width=0.6, color="tab:blue", label="model")
ax.errorbar(x, model, yerr=[model - low, high - model], fmt="none", ecolor="black", capsize=4)
ceiling = table["ceiling mIoU"].astype(float).to_numpy()
ax.hlines(ceiling, x - 0.35, x + 0.35, colors="tab:red", lw=3, label="annotator ceiling")
ax.set_xticks(x, [f"{name}\n({n} classes)" for name, n in zip(table.index, table["classes"])])
ax.set_ylabel("mIoU")
ax.set_ylim(0, 1)
ax.set_title("per-bucket mIoU against the annotator ceiling")
ax.legend()
fig.savefig(OUT / "buckets.png", dpi=100)

# %% [markdown]
# Per class: where the gap is largest. `ceiling_iou` is NaN for classes the consistency set does
# not contain (with 61 real images, most rare classes).

# %%
per_class = result.per_class[["name", "bucket", "train_images", "iou", "ceiling_iou"]]
per_class = per_class.assign(gap=per_class["ceiling_iou"] - per_class["iou"])
display(per_class.sort_values("gap", ascending=False).head(10).round(3))

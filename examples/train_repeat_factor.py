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
# # Repeat-factor sampling in your own PyTorch training loop
#
# In a long-tailed dataset most training images show only the frequent classes; a rare class is
# seen a handful of times an epoch and the network learns to predict it late or never.
# **Repeat-factor sampling** (LVIS, Gupta et al. 2019) shows an image more often when it holds
# a rare class: with `f(c)` the share of training images holding class `c` and a threshold `t`,
# class `c` gets `r(c) = max(1, sqrt(t / f(c)))` and an image the largest `r(c)` of its classes;
# each epoch, image `i` is drawn `floor(r_i)` times plus once more with probability `frac(r_i)`.
#
# segdata gives the two pieces a hand-written loop needs, reading the unified dataset directly:
#
# - `segdata.torch.data.SegmentationDataset(ds, split, vocab, transform)`: samples
#   `{"image", "label", "image_id"}`, labels in the vocabulary's train ids, 255 = ignore;
# - `segdata.torch.samplers.repeat_factors(...)` and `RepeatFactorSampler(factors, seed)`.
#
# We train a tiny network twice on the same generated ADE20K-layout data (class appearance is
# learnable: each class has its colour and texture), uniformly and with repeat factors, for the
# same number of iterations, and score both on the validation split, per frequency bucket.
# Needs torch: `pip install "segdata[torch]"`.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

import segdata
from segdata.convert import convert
from segdata.converters import ade20k
from segdata.eval import evaluate
from segdata.metrics import ConfusionMatrix
from segdata.synthetic import generate_ade20k_2021
from segdata.torch.data import SegmentationDataset
from segdata.torch.samplers import RepeatFactorSampler, class_weights, repeat_factors
from segdata.torch.transforms import eval_transform, train_transform

try:  # a rich table in a notebook, plain text in a terminal
    from IPython.display import display
except ImportError:
    display = print
pd.set_option("display.width", 160)

# Everything is written here (never into the repository); set SEGDATA_EXAMPLE_OUT to keep it.
OUT = Path(os.environ.get("SEGDATA_EXAMPLE_OUT") or tempfile.mkdtemp(prefix="segdata-rfs-"))
OUT.mkdir(parents=True, exist_ok=True)
N_IMAGES = 160  # a quarter of them validation
N_CLASSES = 30
ITERATIONS = 60  # a real run: tens of thousands
BATCH = 8
CROP = 64
THRESHOLD = 0.3  # t: classes in fewer than 30% of the training images are repeated
SEED = 0
torch.manual_seed(SEED)
torch.set_num_threads(1)  # a network this small gains nothing from more threads
print("writing into", OUT)

# %% [markdown]
# ## The data
#
# A generated ADE20K 2021 release (power-law class frequencies), converted to the unified format.
# With your own data: `segdata convert ade20k /data/ADE20K_2021_17_01 ade-full` and
# `segdata.open("ade-full")`.

# %%
release = generate_ade20k_2021(
    OUT / "source",
    N_IMAGES,
    image_size=((80, 96), (112, 128)),
    n_classes=N_CLASSES,
    parts=False,
    val_fraction=0.25,
    seed=SEED,
)
convert(ade20k, release, OUT / "ade", name="ade", overwrite=True)
ds = segdata.open(OUT / "ade")
print(ds, ds.images["split"].value_counts().to_dict())

# %% [markdown]
# ## Dataset, transforms and the repeat factors
#
# Without a vocabulary the dataset trains on every class (full ADE20K defines no train ids); pass
# `vocab=` (a `segdata vocab` file, or `build_vocabulary`) to train on a benchmark vocabulary.
# `train_transform` is the usual random scale, crop (label padded with the ignore index) and flip.

# %%
train_set = SegmentationDataset(ds, "train", transform=train_transform(CROP, scale=(0.75, 1.25)), seed=SEED)
val_set = SegmentationDataset(ds, "val", transform=eval_transform())
K, IGNORE = train_set.num_classes, train_set.ignore_index
sample = train_set[0]
print(
    f"{len(train_set)} training and {len(val_set)} validation images, {K} classes, ignore {IGNORE}; "
    f"a sample: image {tuple(sample['image'].shape)} {sample['image'].dtype}, "
    f"label {tuple(sample['label'].shape)} {sample['label'].dtype}"
)

factors = repeat_factors(ds, "train", threshold=THRESHOLD)  # one per image of train_set, in its order
pd.Series(factors, index=train_set.image_ids, name="repeat_factor").to_csv(OUT / "repeat_factors.csv")
print(
    f"repeat factors: {np.mean(factors > 1):.0%} of the images are repeated, up to {factors.max():.2f}x; "
    f"an epoch holds about {factors.sum():.0f} samples instead of {len(factors)}"
)

# %% [markdown]
# What the sampler does to class exposure: the number of times each class is seen per epoch,
# uniform against repeat-factor, for the rarest classes. (`class_weights` is the other remedy, a
# class-balanced loss; it can be combined with the sampler.)

# %%
presence = np.zeros((len(train_set), K), bool)
for i in range(len(train_set)):
    labels = train_set.read_label(i)
    presence[i, np.unique(labels[labels != IGNORE])] = True
seen_uniform = presence.sum(0)
seen_rfs = (presence * factors[:, None]).sum(0)
exposure = pd.DataFrame(
    {
        "class": train_set.class_names,
        "images": seen_uniform,
        "seen per epoch, uniform": seen_uniform,
        "seen per epoch, repeat factors": seen_rfs.round(1),
        "class-balanced weight": class_weights(ds, "train", beta=0.99, by="images").round(2),
    }
)
display(exposure[exposure["images"] > 0].sort_values("images").head(8))

# %% [markdown]
# ## The model and the loop
#
# A few convolutions: enough to learn the classes' colours and textures. Everything below is a
# plain PyTorch loop; only the sampler differs between the two runs.


# %%
def tiny_net(num_classes: int, width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=2, dilation=2),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, num_classes, 1),
    )


def train(sampler: torch.utils.data.Sampler | None) -> nn.Module:
    torch.manual_seed(SEED)
    model = tiny_net(K)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    generator = torch.Generator().manual_seed(SEED)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=BATCH, sampler=sampler, shuffle=sampler is None, generator=generator, drop_last=True
    )
    step, epoch = 0, 0
    model.train()
    while step < ITERATIONS:
        train_set.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        for batch in loader:
            loss = loss_fn(model(batch["image"]), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 20 == 0:
                print(f"  iteration {step}: loss {loss.item():.3f}")
            if step == ITERATIONS:
                break
        epoch += 1
    return model.eval()


print("uniform sampling")
uniform_model = train(None)
print("repeat-factor sampling")
rfs_model = train(RepeatFactorSampler(factors, seed=SEED))

# %% [markdown]
# ## Scoring on the validation split
#
# `ConfusionMatrix` accumulates the (K, K+1) matrix over images (ignore pixels dropped) and gives
# mIoU over the classes present. The predictions are also written as label PNGs in train ids, the
# files `segdata eval` reads, so that `segdata.eval.evaluate` can score them per frequency bucket.


# %%
@torch.no_grad()
def predict(model: nn.Module, name: str) -> float:
    matrix = ConfusionMatrix(K, ignore_index=IGNORE)
    folder = OUT / "predictions" / name
    folder.mkdir(parents=True, exist_ok=True)
    for sample in val_set:
        pred = model(sample["image"][None]).argmax(1)[0]
        matrix.update(sample["label"].numpy(), pred.numpy())
        Image.fromarray(pred.numpy().astype(np.uint8)).save(folder / f"{sample['image_id']}.png")
    return matrix.compute().miou


rows = []
for name, model in (("uniform", uniform_model), ("repeat factors", rfs_model)):
    miou = predict(model, name)
    result = evaluate(
        ds, OUT / "predictions" / name, vocab=train_set.vocab, by_frequency=True, bootstrap=200, seed=SEED
    ).to_dict()
    row = {"sampling": name, "mIoU": miou}
    for b in result["buckets"]:
        row[f"{b['name']} mIoU"] = b["miou"]
        row[f"{b['name']} CI"] = None if b["ci"] is None else [round(v, 3) for v in b["ci"]]
    rows.append(row)
scores = pd.DataFrame(rows).set_index("sampling")
scores.to_csv(OUT / "scores.csv")
display(scores.round(3))

# %% [markdown]
# With a few dozen iterations and a few dozen validation images the intervals are wide: read the
# rare bucket's difference against its interval before concluding. On a real run (full ADE20K,
# 160k iterations) LVIS reports repeat-factor sampling lifting rare classes most, frequent ones
# barely moving.

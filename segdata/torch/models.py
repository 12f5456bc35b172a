"""Segmentation networks defined in the project, built by name: what ``segdata train`` trains and
what a checkpoint rebuilds (``build(ckpt["arch"], ckpt["num_classes"], **ckpt["arch_args"])``).

Every model takes a normalised float batch ``(B, 3, H, W)`` (the checkpoint's ``normalize`` mean
and std, ImageNet's by default) and returns logits ``(B, K, H, W)`` at the input resolution, one
channel per train id ``0..K-1`` of the vocabulary it was trained on. Any ``H, W`` works (no
multiple of the stride is required). No pretrained weights exist on this machine: the models are
trained from scratch, plain ``nn.Module``\\ s a reader can follow.

- ``deeplab-small``: a compact ResNet-style encoder (basic residual blocks, widths ``w, w, 2w, 4w,
  4w``) at output stride 8 or 16 (the last stages dilated instead of strided, as DeepLabv3), an
  ASPP head (1x1, three dilated 3x3 and image pooling branches) and bilinear upsampling of the
  logits to the input size. About 1.2M parameters at the default width 32.
- ``unet-small``: a four-level U-Net (double 3x3 convolutions, widths ``b, 2b, 4b, 8b`` and a
  ``16b`` bottleneck at 1/16, bilinear upsampling and skip concatenation); about 1.9M parameters
  at the default ``base=16``.
- ``tv-<name>``: a torchvision segmentation model by its builder name (``tv-deeplabv3_resnet50``,
  ``tv-lraspp_mobilenet_v3_large``...), untrained (``weights=None``), only when ``import
  torchvision`` works; its ``"out"`` logits are returned.

>>> model = build("deeplab-small", 5)  # doctest: +SKIP
>>> model(torch.zeros(2, 3, 65, 97)).shape  # doctest: +SKIP
torch.Size([2, 5, 65, 97])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHITECTURES", "DeepLabSmall", "UNetSmall", "available_architectures", "build", "count_parameters"]


def _conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convolutions and a shortcut (1x1 projection when the shape
    changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity, inplace=True)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3): a 1x1 branch, one dilated 3x3 branch per rate
    and an image-pooling branch, concatenated and projected to ``channels``."""

    def __init__(self, c_in: int, channels: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn(c_in, channels, 1)] + [_conv_bn(c_in, channels, 3, dilation=r) for r in rates]
        )
        self.pool = _conv_bn(c_in, channels, 1)
        self.project = _conv_bn(channels * (len(rates) + 2), channels, 1)

    def forward(self, x):
        outs = [branch(x) for branch in self.branches]
        # the mean, not AdaptiveAvgPool2d: its CUDA backward is not deterministic
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabSmall(nn.Module):
    """A compact DeepLabv3: residual encoder at ``output_stride`` 8 or 16, ASPP, bilinear upsampling.

    Parameters
    ----------
    num_classes : int
        K, the output channels (train ids ``0..K-1``).
    width : int
        Channels of the first stages; the encoder runs ``w, w, 2w, 4w, 4w``.
    output_stride : int
        8 or 16: input pixels per feature pixel. Stages past it are dilated, not strided.
    aspp_channels : int
        Channels of each ASPP branch and of the head.
    aspp_rates : tuple of int, optional
        Dilation rates of the ASPP 3x3 branches; default DeepLabv3's (6, 12, 18) at stride 16 and
        (12, 24, 36) at stride 8.
    """

    def __init__(
        self,
        num_classes: int,
        width: int = 32,
        output_stride: int = 8,
        aspp_channels: int = 128,
        aspp_rates: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        if num_classes < 1 or width < 1 or aspp_channels < 1:
            raise ValueError("num_classes, width and aspp_channels must be >= 1")
        if aspp_rates is None:
            aspp_rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        w = width
        self.stem = nn.Sequential(_conv_bn(3, w, 3, stride=2), _conv_bn(w, w, 3))  # 1/2
        self.layer1 = BasicBlock(w, w, stride=2)  # 1/4
        self.layer2 = BasicBlock(w, 2 * w, stride=2)  # 1/8
        if output_stride == 16:
            self.layer3 = BasicBlock(2 * w, 4 * w, stride=2)  # 1/16
            self.layer4 = BasicBlock(4 * w, 4 * w, dilation=2)
        else:
            self.layer3 = BasicBlock(2 * w, 4 * w, dilation=2)  # stays 1/8
            self.layer4 = BasicBlock(4 * w, 4 * w, dilation=4)
        self.aspp = ASPP(4 * w, aspp_channels, tuple(int(r) for r in aspp_rates))
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, x):
        size = x.shape[2:]
        f = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        logits = self.classifier(self.aspp(f))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class UNetSmall(nn.Module):
    """A four-level U-Net: double 3x3 convolutions at widths ``base * (1, 2, 4, 8)``, a
    ``16 * base`` bottleneck at 1/16, decoder stages that upsample bilinearly to the skip's size
    (any input size works), concatenate and convolve; a 1x1 classifier at full resolution.

    Parameters
    ----------
    num_classes : int
        K, the output channels.
    base : int
        Channels of the first level.
    """

    def __init__(self, num_classes: int, base: int = 16):
        super().__init__()
        if num_classes < 1 or base < 1:
            raise ValueError("num_classes and base must be >= 1")
        widths = [base, 2 * base, 4 * base, 8 * base]
        self.encoders = nn.ModuleList()
        c = 3
        for w in widths:
            self.encoders.append(nn.Sequential(_conv_bn(c, w), _conv_bn(w, w)))
            c = w
        self.bottleneck = nn.Sequential(_conv_bn(c, 16 * base), _conv_bn(16 * base, 16 * base))
        self.decoders = nn.ModuleList()
        c = 16 * base
        for w in reversed(widths):
            self.decoders.append(nn.Sequential(_conv_bn(c + w, w), _conv_bn(w, w)))
            c = w
        self.classifier = nn.Conv2d(base, num_classes, 1)

    def forward(self, x):
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=True)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.classifier(x)


class _TorchvisionOut(nn.Module):
    """A torchvision segmentation model returning its ``"out"`` logits as a tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def _torchvision(name: str, num_classes: int, **arch_args) -> nn.Module:
    try:
        import torchvision.models.segmentation as tvseg
    except Exception as exc:  # the wheels here fail with RuntimeError (torchvision::nms), not ImportError
        raise ValueError(f"model tv-{name} needs torchvision, which does not import here ({exc})") from None
    builder = getattr(tvseg, name, None)
    if builder is None or name.startswith("_") or not callable(builder):
        raise ValueError(f"torchvision has no segmentation model {name!r}")
    arch_args.setdefault("weights", None)
    arch_args.setdefault("weights_backbone", None)
    return _TorchvisionOut(builder(num_classes=num_classes, **arch_args))


#: the architectures defined in the project, name -> class; ``tv-<name>`` is built by :func:`build` too
ARCHITECTURES: dict[str, type[nn.Module]] = {"deeplab-small": DeepLabSmall, "unet-small": UNetSmall}
TORCHVISION_PREFIX = "tv-"


def available_architectures() -> list[str]:
    """The project's architectures, plus torchvision's segmentation models (``tv-<name>``) when
    torchvision imports."""
    names = list(ARCHITECTURES)
    try:
        import torchvision.models.segmentation as tvseg

        names += [TORCHVISION_PREFIX + n for n in sorted(tvseg.__all__) if n[0].islower()]
    except Exception:  # not installed, or a wheel that does not match torch
        pass
    return names


def build(arch: str, num_classes: int, **arch_args) -> nn.Module:
    """The network ``arch`` with ``num_classes`` output channels, freshly initialised (torch's
    default initialisation, from torch's global RNG: seed it first for a reproducible model).

    Parameters
    ----------
    arch : str
        A key of :data:`ARCHITECTURES` or ``tv-<torchvision builder name>``.
    num_classes : int
        K, the logits' channels.
    **arch_args
        The architecture's keyword arguments (``width``, ``output_stride``... see the classes);
        what a checkpoint stores as ``arch_args``.

    Raises
    ------
    ValueError
        An unknown architecture (the known ones listed), an argument it does not take.
    """
    if arch.startswith(TORCHVISION_PREFIX):
        return _torchvision(arch[len(TORCHVISION_PREFIX) :], num_classes, **arch_args)
    cls = ARCHITECTURES.get(arch)
    if cls is None:
        raise ValueError(f"unknown model {arch!r}; models: {', '.join(available_architectures())}")
    try:
        return cls(num_classes, **arch_args)
    except TypeError as exc:
        raise ValueError(f"model {arch}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

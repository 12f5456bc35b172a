"""Deterministic class colours for datasets whose source defines none."""

from __future__ import annotations

import colorsys


def class_color(class_id: int) -> str:
    """A distinct, stable colour for ``class_id`` as ``#rrggbb`` (golden-ratio hue walk).

    Depends on the id alone, never on hash order or on which other classes exist.

    >>> class_color(1), class_color(1) == class_color(1)
    ('#3f70e6', True)
    """
    hue = (class_id * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((class_id * 7) % 3) / 2
    val = 0.65 + 0.25 * ((class_id * 5) % 2)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"

"""Colour contrast (WCAG 2.x), the one place that decides whether a commune's colour is readable.

A commune's colours are shown as text on the portal's light surfaces (links, headings, the news
date) and as backgrounds under white text (the top bar, the buttons, the current tab).  A colour is
readable when it reaches 4.5:1 against every one of those surfaces, the darkest of which is
SURFACES' light blue; white text on the colour then reaches at least as much.

``readable_colour`` darkens a colour that fails, keeping its hue and saturation, by the smallest
step of lightness that passes: the commune keeps its look.
"""

from __future__ import annotations

import colorsys
import re
from functools import lru_cache

MIN_TEXT_RATIO = 4.5
# the light surfaces of static/css/portail.css the commune colours meet: white (cards, and the white
# text on a coloured bar or button), --bg (the page), the light blue of .status/.tag/.flash
SURFACES = ("#ffffff", "#f4f6f8", "#e8f1fb")
HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def parse_hex(colour: str) -> tuple[int, int, int]:
    colour = (colour or "").strip()
    if not HEX_RE.match(colour):
        raise ValueError(f"couleur invalide : {colour!r} (attendu #rrggbb)")
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{max(0, min(255, c)):02x}" for c in rgb)


def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str | tuple[int, int, int]) -> float:
    r, g, b = parse_hex(colour) if isinstance(colour, str) else colour
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: str | tuple[int, int, int], b: str | tuple[int, int, int]) -> float:
    """WCAG 2.x contrast ratio, from 1.0 (same colour) to 21.0 (black on white)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def worst_contrast(colour: str | tuple[int, int, int], surfaces=SURFACES) -> float:
    """The lowest ratio of the colour against the surfaces it is shown on."""
    return min(contrast_ratio(colour, s) for s in surfaces)


def is_readable(colour: str, surfaces=SURFACES, target: float = MIN_TEXT_RATIO) -> bool:
    return worst_contrast(colour, surfaces) >= target


@lru_cache(maxsize=256)
def readable_colour(colour: str, surfaces=SURFACES, target: float = MIN_TEXT_RATIO) -> str:
    """The colour itself when it is readable, else the lightest darker shade of the same hue that is."""
    rgb = parse_hex(colour)
    if worst_contrast(rgb, surfaces) >= target:
        return to_hex(rgb)
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))

    def shade(lum: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hls_to_rgb(h, lum, s)
        return round(r * 255), round(g * 255), round(b * 255)

    low, high = 0.0, lightness  # black passes (21:1 against white), the colour does not
    for _ in range(40):
        mid = (low + high) / 2
        if worst_contrast(shade(mid), surfaces) >= target:
            low = mid
        else:
            high = mid
    best = shade(low)
    while worst_contrast(best, surfaces) < target:  # rounding to 8 bits may lose a hair
        best = tuple(max(0, c - 1) for c in best)
    return to_hex(best)


def floor_ratio(colour: str, surfaces=SURFACES) -> float:
    """The worst ratio rounded down to a tenth (never flattering): 4.49 is 4.4, not 4.5."""
    return int(worst_contrast(colour, surfaces) * 10) / 10


def describe(colour: str, surfaces=SURFACES) -> str:
    """'2.0:1' — the worst ratio as a person reads it."""
    return f"{floor_ratio(colour, surfaces):.1f}:1"

"""One fixed line style per head: colour, marker and dash, so the same head looks the same in every figure.

Heads are numbered in sorted order over the whole report; head i gets colour i mod 20 of tab20 (the ten dark
shades first, then the ten light ones), marker i mod 7 and dash i mod 4. Since 20 and 7 are coprime, the first 140
heads get distinct (colour, marker) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from matplotlib import colormaps
from matplotlib.colors import to_hex

MARKERS = ("o", "s", "^", "D", "v", "P", "X")
Dash = Literal["-", "--", "-.", ":"]  # matplotlib line styles
DASHES: tuple[Dash, ...] = ("-", "--", "-.", ":")
TAB20_ORDER = tuple(range(0, 20, 2)) + tuple(range(1, 20, 2))  # dark shades, then their light partners


@dataclass(frozen=True)
class LineStyle:
    """How one head is drawn."""

    colour: str  # '#rrggbb'
    marker: str
    dash: Dash


def head_styles(heads: set[str] | list[str]) -> dict[str, LineStyle]:
    """A distinct style for each head name, fixed by the names' sorted order."""
    palette = colormaps["tab20"]
    return {head: LineStyle(to_hex(palette(TAB20_ORDER[i % 20])), MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)])
            for i, head in enumerate(sorted(set(heads)))}

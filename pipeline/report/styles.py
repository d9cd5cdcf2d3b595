"""One fixed line style per head: colour, marker and dash, so the same head looks the same in every figure and in
every report, whatever other heads it holds.

The project's heads are numbered by `pipeline.head_names.HEADS` (the order they joined; a new head is appended, so
no head's style ever changes); heads it does not know follow it, in sorted order. Head i gets colour i mod 20 of
tab20 (the ten dark shades first, then the ten light ones), marker i mod 7 and dash i mod 4: since 20 and 7 are
coprime, the first 140 heads get distinct (colour, marker) pairs. A scoring variant (`gda+transclip`, `gda+vfree`)
keeps its head's colour and marker and takes another dash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from matplotlib import colormaps
from matplotlib.colors import to_hex

from pipeline.head_names import HEADS

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


HEAD_ORDER = HEADS  # every head of pipeline.heads, in the order they joined
VARIANTS = ("transclip", "vfree")  # '<head>+<variant>' labels of the report


def head_styles(heads: set[str] | list[str]) -> dict[str, LineStyle]:
    """The fixed style of each head name (see the module docstring)."""
    palette = colormaps["tab20"]
    bases = {head.split("+", 1)[0] for head in heads}
    unknown = sorted(bases - set(HEAD_ORDER))
    index = {name: i for i, name in enumerate((*HEAD_ORDER, *unknown))}
    styles = {}
    for head in set(heads):
        base, _, variant = head.partition("+")
        i = index[base]
        shift = 1 + VARIANTS.index(variant) if variant in VARIANTS else (1 + len(VARIANTS) if variant else 0)
        styles[head] = LineStyle(to_hex(palette(TAB20_ORDER[i % 20])), MARKERS[i % len(MARKERS)],
                                 DASHES[(i + shift) % len(DASHES)])
    return styles

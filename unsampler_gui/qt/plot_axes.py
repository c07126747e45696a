"""An axis for short plots: its labelled ticks never pile up, however low the plot is.

pyqtgraph always labels at least three major ticks (2.25 intervals), whatever the axis' length: on a plot 40 px
high that is five labels in the space of three, drawn over each other. ``SparseAxis`` widens the major spacing
(1, 2, 5 x 10^k) until neighbouring labels of a vertical axis are ``label_pitch()`` pixels apart (a label's
height and a gap), and labels the major ticks only.
"""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtGui import QFontMetricsF

#: Pixels between two labels of a vertical axis, besides the label's own height.
LABEL_GAP = 2.0


def nicer(spacing: float) -> float:
    """The next tick spacing above ``spacing`` in the 1, 2, 5 x 10^k series."""
    e = math.floor(math.log10(spacing))
    m = spacing / 10 ** e
    for step in (2, 5, 10):
        if m < step - 1e-9:
            return step * 10 ** e
    return 20 * 10 ** e


def labels_between(lo: float, hi: float, spacing: float) -> int:
    """How many multiples of ``spacing`` lie in ``lo..hi`` (the major ticks an axis labels)."""
    return max(0, math.floor(hi / spacing + 1e-9) - math.ceil(lo / spacing - 1e-9) + 1)


class SparseAxis(pg.AxisItem):
    """A ``pg.AxisItem`` whose vertical labels keep ``label_pitch()`` pixels apart; major ticks labelled only."""

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self.setStyle(maxTextLevel=0)

    def label_pitch(self) -> float:
        """The least distance, in pixels, between two labels of this (vertical) axis: pyqtgraph draws a label
        0.8 font heights high; a gap of ``LABEL_GAP`` keeps neighbours apart."""
        return 0.8 * QFontMetricsF(self.style["tickFont"] or self.font()).height() + LABEL_GAP

    def tickSpacing(self, minVal: float, maxVal: float, size: float):
        levels = super().tickSpacing(minVal, maxVal, size)
        dif = abs(maxVal - minVal)
        if not levels or dif == 0 or size <= 0 or self._tickSpacing is not None or \
                self.orientation not in ("left", "right"):
            return levels
        least = self.label_pitch() * dif / size  # the smallest spacing, in values, that keeps labels apart
        major = levels[0][0]
        while major < least:
            major = nicer(major)
        if major == levels[0][0]:
            return levels
        return [(major, 0)] + [lv for lv in levels if lv[0] < major][:1]


def sparse_axes(*names: str) -> dict:
    """``axisItems`` for ``pg.PlotWidget``: a ``SparseAxis`` for each of ``names`` ("left", "right", …)."""
    return {name: SparseAxis(name) for name in names}

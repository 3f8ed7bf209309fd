"""One figure as both wings draw it: a file stem, a caption, the matplotlib Figure and the arrays
it plots, saved as a palette PNG (and optionally a PDF)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

DPI = 110


@dataclass(frozen=True)
class Plot:
    """One figure: file stem, a one-line caption, the Figure, and the plotted arrays."""

    name: str
    title: str
    figure: Figure
    data: dict = field(default_factory=dict)

    def save(self, folder: str | Path, pdf: bool = False, dpi: int = DPI) -> list[Path]:
        """Write `<name>.png` (and `.pdf`) into folder; returns the paths."""
        folder = Path(folder)
        png = folder / f"{self.name}.png"
        # rendered straight to pixels (savefig's PNG encoding and decoding skipped: same pixels);
        # a 128-colour palette keeps every line and label, file ~3x smaller (committed reports)
        img = (
            Image.fromarray(self._render(dpi))
            .convert("RGB")
            .quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        )
        img.save(png, optimize=True)
        paths = [png]
        if pdf:
            paths.append(folder / f"{self.name}.pdf")
            self.figure.savefig(paths[-1], metadata={"CreationDate": None})
        return paths

    def _render(self, dpi: int) -> np.ndarray:
        """The figure's RGBA pixels at dpi, as savefig would draw them."""
        canvas = FigureCanvasAgg(self.figure)
        own_dpi = self.figure.dpi
        self.figure.set_dpi(dpi)
        try:
            canvas.draw()
            return np.array(canvas.buffer_rgba())
        finally:
            self.figure.set_dpi(own_dpi)

"""One figure as both wings draw it: a file stem, a caption, the matplotlib Figure and the arrays
it plots, saved as a palette PNG (and optionally a PDF)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

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
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi)
        # a 128-colour palette keeps every line and label, file ~3x smaller (committed reports)
        img = (
            Image.open(buf)
            .convert("RGB")
            .quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        )
        img.save(png, optimize=True)
        paths = [png]
        if pdf:
            paths.append(folder / f"{self.name}.pdf")
            self.figure.savefig(paths[-1], metadata={"CreationDate": None})
        return paths

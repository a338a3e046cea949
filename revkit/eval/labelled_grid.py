r"""A PNG of image rows with a text label in front of each row and an optional title above.

Layout (pixels, before any scaling of the images):

.. code-block:: text

    ┌──────────── title strip (TITLE_HEIGHT, only with a title) ─────────────┐   (the picture is widened
    │                                                                        │    when the title is wider)
    │ label strip │ pad │ img │ pad │ img │ … │ pad                          │   row 0
    │             │ pad │ img │ pad │ img │ … │ pad                          │   row 1

The image grid is :func:`revkit.eval.images.grid_array` of the rows (``pad = 2``, white background),
enlarged by the integer factor :func:`cell_scale` so that small images are still visible; the
label strip is :func:`label_strip_width` pixels wide. The PNG carries the layout as text chunks
(``revkit:rows``, ``revkit:cols``, ``revkit:cell`` as ``HxW`` pixels, ``revkit:grid`` as
``left top width height`` of the image grid) for tools and tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from revkit.eval.images import grid_array

PAD = 2
#: rows of the grid are at least this many pixels tall (small images are enlarged by an integer factor).
MIN_CELL = 24
TITLE_HEIGHT = 18
LABEL_MARGIN = 6


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _draw_text(draw: ImageDraw.ImageDraw, x: float, y_centre: float, text: str, ink: int | tuple[int, ...]) -> None:
    """Draw ``text`` left-aligned at ``x``, vertically centred on ``y_centre``."""
    font = _font()
    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text((x, y_centre), text, fill=ink, font=font, anchor="lm")
    else:  # bitmap fonts know no anchors
        _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
        draw.text((x, y_centre - (top + bottom) / 2), text, fill=ink, font=font)


def cell_scale(height: int) -> int:
    """Integer enlargement of images ``height`` pixels tall: the smallest ``s ≥ 1`` with ``s·height ≥ MIN_CELL``."""
    return max(1, math.ceil(MIN_CELL / max(1, int(height))))


def label_strip_width(labels: Sequence[str]) -> int:
    """Width of the label strip: the longest label plus a margin on each side (0 when all labels are empty)."""
    if not any(labels):
        return 0
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    return int(math.ceil(max(draw.textlength(text, font=_font()) for text in labels))) + 2 * LABEL_MARGIN


def write_labelled_rows(rows: Sequence[Tensor], labels: Sequence[str], path: Path, title: str = "") -> Path:
    """Write ``rows`` (each ``[K, C, H, W]`` with the same ``K``, intensities in [0, 1]) as one PNG.

    Labels and title should be ASCII: Pillow's built-in font has no glyphs for most other characters.

    Args:
        rows: the images of each row, left to right.
        labels: one text per row, drawn left of it.
        title: drawn above the grid when not empty.
    """
    if not rows:
        raise ValueError("write_labelled_rows needs at least one row")
    if len(labels) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
    cols = rows[0].shape[0]
    if any(r.shape[0] != cols or r.shape[1:] != rows[0].shape[1:] for r in rows):
        raise ValueError("every row needs the same number of images of the same shape")
    h = int(rows[0].shape[-2])
    scale = cell_scale(h)
    grid = grid_array(torch.cat([r.detach().cpu() for r in rows]), nrow=cols, pad=PAD)
    grid = np.kron(grid, np.ones((scale, scale) + (1,) * (grid.ndim - 2), dtype=grid.dtype))
    mode = "L" if grid.ndim == 2 else "RGB"
    left, top = label_strip_width(labels), TITLE_HEIGHT if title else 0
    width = max(left + grid.shape[1], label_strip_width([title]))
    canvas = Image.new(mode, (width, top + grid.shape[0]), color=255 if mode == "L" else (255,) * 3)
    canvas.paste(Image.fromarray(grid, mode=mode), (left, top))
    draw = ImageDraw.Draw(canvas)
    ink = 0 if mode == "L" else (0, 0, 0)
    row_height = (h + PAD) * scale
    for i, text in enumerate(labels):
        centre = top + PAD * scale + i * row_height + h * scale / 2
        _draw_text(draw, LABEL_MARGIN, centre, text, ink)
    if title:
        _draw_text(draw, LABEL_MARGIN, TITLE_HEIGHT / 2, title, ink)
    info = PngInfo()
    info.add_text("revkit:rows", str(len(rows)))
    info.add_text("revkit:cols", str(cols))
    info.add_text("revkit:cell", f"{h * scale}x{int(rows[0].shape[-1]) * scale}")
    info.add_text("revkit:grid", f"{left} {top} {grid.shape[1]} {grid.shape[0]}")
    path = Path(path)
    canvas.save(path, format="PNG", pnginfo=info)
    return path

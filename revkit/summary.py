"""What ``revkit inspect`` prints, for any chain of blocks: the compact graph and a per-layer table.

Each model kind composes its own summary from these pieces (:meth:`revkit.model.Model.summary`);
nothing here knows a kind.

The compact graph is the form the paper uses, with consecutive equal blocks merged and a
factor-out block's continuation read inline::

    Squeeze → 4×AffineCoupling(64) → Split → Squeeze → 4×AffineCoupling(64)

The table lists every block (repeats expanded, continuations indented) with its per-sample input
and output shapes and its own parameter count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from revkit.invertible import Invertible, Shape
from revkit.sequential import Sequential


@dataclass(frozen=True)
class LayerRow:
    """One block of a flow.

    Attributes:
        index: position in data → latent order, counting through continuations.
        description: the block's ``describe()``.
        input_shape: per-sample shape the block takes.
        output_shape: per-sample shape it passes on (for a factor-out block, the kept part that
            continues; the factored part is :attr:`factored_shape`).
        parameters: trainable and frozen parameter count of the block itself (a factor-out
            block's continuation is counted in its own rows).
        depth: how many factor-out blocks precede it (0 for the top level).
        factored_shape: per-sample shape a factor-out block hands straight to the latent.
    """

    index: int
    description: str
    input_shape: Shape
    output_shape: Shape
    parameters: int
    depth: int = 0
    factored_shape: Shape | None = None


def parameter_count(module: nn.Module) -> int:
    """Number of scalar parameters of ``module`` (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters())


def _continuation(block: Invertible) -> Invertible | None:
    then = getattr(block, "then", None)
    return then if isinstance(then, Invertible) and hasattr(block, "kept_shape") else None


def _is_plain_chain(block: Invertible) -> bool:
    """A bare :class:`Sequential` is read inline; a block built on it (``GlowStep``) is one row."""
    return type(block) is Sequential


def _blocks(chain: Invertible) -> Iterator[Invertible]:
    """The blocks of a chain in order, reading :class:`Sequential` and continuations inline."""
    if not isinstance(chain, Sequential):
        yield chain
        return
    for block in chain:
        if _is_plain_chain(block):
            yield from _blocks(block)
            continue
        yield block
        then = _continuation(block)
        if then is not None:
            yield from _blocks(then)


def describe(chain: Invertible) -> str:
    """The compact graph of a chain of blocks (or of a model's :meth:`~revkit.model.Model.layer_chain`):
    ``Squeeze → 4×AffineCoupling(64) → Split → …``."""
    if callable(getattr(chain, "layer_chain", None)):
        chain = chain.layer_chain()[0]
    runs: list[list[object]] = []
    for block in _blocks(chain):
        text = block.describe()
        if runs and runs[-1][0] == text:
            runs[-1][1] = int(runs[-1][1]) + 1  # type: ignore[call-overload]
        else:
            runs.append([text, 1])
    if not runs:
        return "Identity"
    return " → ".join(text if count == 1 else f"{count}×{text}" for text, count in runs)  # type: ignore[misc]


def _rows(chain: Sequential, shape: Shape, depth: int, start: int) -> list[LayerRow]:
    rows: list[LayerRow] = []
    for block in chain:
        if _is_plain_chain(block):
            rows.extend(_rows(block, shape, depth, start + len(rows)))
            shape = block.output_shape(shape)
            continue
        then = _continuation(block)
        own = parameter_count(block) - (parameter_count(then) if then is not None else 0)
        if hasattr(block, "kept_shape"):
            kept = tuple(block.kept_shape)  # type: ignore[attr-defined]
            factored = tuple(getattr(block, "factored_shape", ())) or None
            rows.append(LayerRow(start + len(rows), block.describe(), tuple(shape), kept, own, depth, factored))
            if then is not None:
                inner = then if isinstance(then, Sequential) else Sequential([then], kept)
                rows.extend(_rows(inner, kept, depth + 1, start + len(rows)))
            return rows
        out = tuple(block.output_shape(shape))
        rows.append(LayerRow(start + len(rows), block.describe(), tuple(shape), out, own, depth))
        shape = out
    return rows


def chain_rows(chain: Sequential, shape: Shape) -> list[LayerRow]:
    """One :class:`LayerRow` per block of ``chain`` on per-sample input ``shape``, in data → latent order."""
    return _rows(chain, tuple(shape), 0, 0)


def layer_table(model: Any) -> list[LayerRow]:
    """The rows of a model's per-layer table (:meth:`revkit.model.Model.layer_chain`)."""
    chain, shape = model.layer_chain()
    return chain_rows(chain, shape)


def fmt_shape(shape: Shape | None) -> str:
    """``(1, 28, 28)`` → ``'1×28×28'``."""
    return "—" if shape is None else "×".join(str(int(s)) for s in shape)


def render_table(rows: list[LayerRow], extra: list[tuple[str, Shape | None, int]], total: str) -> str:
    """The per-layer table: ``rows``, then ``extra`` rows ``(label, shape, parameters)`` (a prior),
    then the line ``total``."""
    header = ("#", "layer", "input", "output", "params")
    body = []
    for row in rows:
        name = "  " * row.depth + row.description
        out = fmt_shape(row.output_shape)
        if row.factored_shape is not None:
            out += f" (+{fmt_shape(row.factored_shape)} out)"
        body.append((str(row.index), name, fmt_shape(row.input_shape), out, f"{row.parameters:,}"))
    for label, shape, params in extra:
        body.append(("", label, fmt_shape(shape), "", f"{params:,}"))
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    right = {0, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in body), total]
    return "\n".join(lines)


def render_inspect(model: Any) -> str:
    """What ``revkit inspect`` prints for a model: its own :meth:`~revkit.model.Model.summary`."""
    return str(model.summary())

"""What ``revkit inspect`` prints: the compact graph and a per-layer table.

The compact graph is the form the paper uses, with consecutive equal blocks merged and a
factor-out block's continuation read inline::

    Squeeze → 4×AffineCoupling(64) → Split → Squeeze → 4×AffineCoupling(64)

The table lists every block (repeats expanded, continuations indented) with its per-sample input
and output shapes and its own parameter count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from revkit.flow import Flow
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
    members = _chain_and_input(chain)[0]
    if not isinstance(members, Sequential):
        yield members
        return
    for block in members:
        if _is_plain_chain(block):
            yield from _blocks(block)
            continue
        yield block
        then = _continuation(block)
        if then is not None:
            yield from _blocks(then)


def describe(flow: Invertible) -> str:
    """The compact graph: ``Squeeze → 4×AffineCoupling(64) → Split → …``."""
    runs: list[list[object]] = []
    for block in _blocks(flow):
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


def _chain_and_input(model: nn.Module) -> tuple[nn.Module, Shape]:
    """The chain of blocks to list and its input shape: a flow's network on the data's shape, a VAE's
    posterior flow on the latent's; any other module is its own chain."""
    if isinstance(model, Flow):
        return model.net, tuple(model.input_shape)
    from revkit.vae.model import VAE

    if isinstance(model, VAE):
        return model.posterior_flow, tuple(model.latent_shape)
    return model, tuple(getattr(model, "input_shape", ()))


def layer_table(flow: Flow) -> list[LayerRow]:
    """One :class:`LayerRow` per block of ``flow`` (of a VAE's posterior flow), in data → latent order."""
    chain, shape = _chain_and_input(flow)
    assert isinstance(chain, Sequential)
    return _rows(chain, shape, 0, 0)


def fmt_shape(shape: Shape | None) -> str:
    """``(1, 28, 28)`` → ``'1×28×28'``."""
    return "—" if shape is None else "×".join(str(int(s)) for s in shape)


def render_table(flow: Flow) -> str:
    """The per-layer table with totals, as ``revkit inspect`` prints it."""
    rows = layer_table(flow)
    header = ("#", "layer", "input", "output", "params")
    body = []
    for row in rows:
        name = "  " * row.depth + row.description
        out = fmt_shape(row.output_shape)
        if row.factored_shape is not None:
            out += f" (+{fmt_shape(row.factored_shape)} out)"
        body.append((str(row.index), name, fmt_shape(row.input_shape), out, f"{row.parameters:,}"))
    net_params = parameter_count(flow.net)
    prior_params = parameter_count(flow.prior) if flow.prior is not None else 0
    prior_name = type(flow.prior).__name__ if flow.prior is not None else "none"
    body.append(("", f"prior: {prior_name}", fmt_shape(flow.latent_shape), "", f"{prior_params:,}"))
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    right = {0, 4}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in body)]
    lines.append(f"total parameters: {net_params + prior_params:,} (network {net_params:,}, prior {prior_params:,})")
    return "\n".join(lines)


def render_inspect(flow: Flow) -> str:
    """The compact graph, the latent shape and the per-layer table (for a VAE, its posterior flow's:
    :func:`revkit.vae.summary.render_vae`)."""
    from revkit.vae.model import VAE

    if isinstance(flow, VAE):
        from revkit.vae.summary import render_vae

        return render_vae(flow)
    return "\n".join([
        describe(flow),
        f"input {fmt_shape(flow.input_shape)} → latent {fmt_shape(flow.latent_shape)}",
        "",
        render_table(flow),
    ])

"""What ``revkit inspect`` prints for a VAE: the posterior flow's graph and table, and the parameter
counts of the encoder, the decoder and the flow."""

from __future__ import annotations

from revkit.summary import describe, fmt_shape, layer_table, parameter_count
from revkit.vae.model import VAE


def render_vae(model: VAE) -> str:
    latent = model.latent_shape
    lines = [
        f"VAE: encoder → N(μ, σ²) on {fmt_shape(latent)} → posterior flow (K = {model.flow_steps}) → decoder",
        f"posterior flow: {describe(model)}",
        f"input {fmt_shape(model.input_shape)} → latent {fmt_shape(latent)}",
        "",
    ]
    rows = layer_table(model)  # the posterior flow's rows
    for row in rows:
        lines.append(f"  {row.index:>3}  {row.description:<28} {fmt_shape(row.input_shape):>6} → "
                     f"{fmt_shape(row.output_shape):<6} {row.parameters:>10,}")
    parts = {"encoder": model.encoder, "posterior flow": model.posterior_flow, "decoder": model.decoder}
    counts = ", ".join(f"{name} {parameter_count(m):,}" for name, m in parts.items())
    lines.append(f"total parameters: {parameter_count(model):,} ({counts})")
    return "\n".join(lines)

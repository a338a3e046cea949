r"""What the evaluation reads from a prior beyond the base contract: per-component means and stds,
and the number of active (non-collapsed) latent dimensions.

A prior with one diagonal Gaussian per class (``class_gaussian``) is summarised by
``means, stds: [classes, *latent]``. These are optional methods, looked up by name:

* stds: ``prior.component_stds()``; else ``prior.component_log_stds().exp()``;
* means: ``prior.component_means()``.

A prior without them gets no std-based pictures; the functions here return the reason, which
the report writes into ``metrics.json`` (never skipped silently). The active dimensions come from
the base contract :meth:`revkit.priors.base.Prior.active_dims`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from revkit.priors.base import Prior


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of the module's first parameter or buffer (CPU when it has none)."""
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def _call(prior: Prior, name: str) -> Tensor | None:
    method = getattr(prior, name, None)
    if not callable(method):
        return None
    value = method()
    return value.detach() if isinstance(value, Tensor) else None


def _components(prior: Prior, value: Tensor, what: str) -> tuple[Tensor | None, str]:
    if tuple(value.shape[1:]) != tuple(prior.shape) or value.dim() != len(prior.shape) + 1:
        return None, (f"{type(prior).__name__}.{what} has shape {tuple(value.shape)}, expected "
                      f"[components, {', '.join(map(str, prior.shape))}]")
    return value, ""


def component_stds(prior: Prior | None) -> tuple[Tensor | None, str]:
    """``(stds [K, *latent], "")`` of the prior's K components, or ``(None, why not)``."""
    if prior is None:
        return None, "the flow has no prior"
    stds = _call(prior, "component_stds")
    if stds is not None:
        return _components(prior, stds, "component_stds()")
    log_stds = _call(prior, "component_log_stds")
    if log_stds is not None:
        return _components(prior, log_stds.exp(), "component_log_stds()")
    return None, (f"the prior {type(prior).__name__} offers no per-component stds "
                  "(no component_stds() or component_log_stds() method)")


def component_means(prior: Prior | None) -> tuple[Tensor | None, str]:
    """``(means [K, *latent], "")`` of the prior's K components, or ``(None, why not)``."""
    if prior is None:
        return None, "the flow has no prior"
    means = _call(prior, "component_means")
    if means is None:
        return None, f"the prior {type(prior).__name__} offers no component_means() method"
    return _components(prior, means, "component_means()")


def component_labels(prior: Prior, count: int) -> Tensor | None:
    """The labels to pass with component ``k`` (``arange(count)`` for a class-conditional prior, else None)."""
    return torch.arange(count, device=module_device(prior)) if prior.conditional else None


def active_dims_per_class(prior: Prior | None) -> list[int] | None:
    """How many latent dimensions :meth:`Prior.active_dims` marks active for each class (one
    number for an unconditional prior), or None without a prior."""
    if prior is None:
        return None
    with torch.no_grad():
        if prior.conditional and prior.classes > 0:
            y = torch.arange(prior.classes, device=module_device(prior))
            mask = prior.active_dims(y).expand(prior.classes, *prior.shape)
        else:
            mask = prior.active_dims(None)
    return [int(m.sum()) for m in mask.reshape(mask.shape[0], -1)]


def restricts(prior: Prior | None) -> bool:
    """The prior restricts latents (overrides :meth:`Prior.restrict`), so restricted pictures differ from full ones."""
    return prior is not None and type(prior).restrict is not Prior.restrict


r"""The conformance checks, one public function each.

Every check takes a constructed block (see :mod:`revkit.invertible` for the contract) and a
batch ``x`` of shape ``[batch, *input_shape]`` in the block's input domain, and raises
:class:`AssertionError` naming the check and the size of the error when the block breaks the
contract. None of them changes the block: each works on a deep copy in an explicit mode
(``eval()`` unless stated). Checks that compare log-dets run the copy in float64 and, for
blocks with ``exact_logdet = False``, inside the block's ``exact_logdet_mode()``.

Direction: ``forward`` is data → latent, ``y = f(x)``, ``logdet = log|det ∂f/∂x|`` per sample.

Example:
    >>> from revkit.blocks.split import Split
    >>> x = torch.randn(3, 4)
    >>> check_round_trip(Split((4,)), x)
    >>> check_jacobian_logdet(Split((4,)), x)
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import Tensor

from revkit.invertible import Invertible
from revkit.memory_saving import run_memory_saving
from revkit.testing.jacobian import brute_force_logdet
from revkit.testing.strategies import draw_inputs

#: batch size of the gradient check's re-tries.
RETRY_BATCH = 64


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def exact_mode(block: Invertible) -> contextlib.AbstractContextManager[object]:
    """The context in which ``block``'s ``logdet`` is exact.

    Blocks with ``exact_logdet = True`` need none; the others (stochastic estimators) must offer
    ``exact_logdet_mode()`` returning a context manager.

    Raises:
        AssertionError: the block declares ``exact_logdet = False`` without that method.
    """
    if getattr(block, "exact_logdet", True):
        return contextlib.nullcontext()
    method = getattr(block, "exact_logdet_mode", None)
    inherited = getattr(type(block), "exact_logdet_mode", None) is Invertible.exact_logdet_mode
    if not callable(method) or inherited:
        raise AssertionError(
            f"{type(block).__name__} declares exact_logdet = False but has no exact_logdet_mode() "
            "of its own (Invertible's default changes nothing); the contract requires blocks with a stochastic log-det to provide one that "
            "returns a context manager in which logdet is exact, so it can be checked"
        )
    return method()


_SEED_STATES: dict[int, Tensor] = {}


@contextlib.contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """Run with torch's CPU generator in the state ``torch.manual_seed(seed)`` gives, leaving the
    caller's random state untouched (states are cached: ``manual_seed`` itself is slow under
    hypothesis, which records every call)."""
    state = _SEED_STATES.get(seed)
    if state is None:
        state = _SEED_STATES[seed] = torch.Generator().manual_seed(seed).get_state()
    saved = torch.get_rng_state()
    torch.set_rng_state(state)
    try:
        yield
    finally:
        torch.set_rng_state(saved)


def _copy(block: Invertible, *, train: bool, double: bool = False) -> Invertible:
    clone = copy.deepcopy(block)
    clone.train(train)
    return clone.double() if double else clone


def _as(t: Tensor | None, ref: Tensor) -> Tensor | None:
    return None if t is None else t.to(dtype=ref.dtype) if t.is_floating_point() else t


def _rows(t: Tensor | None, i: int) -> Tensor | None:
    return None if t is None else t[i : i + 1]


def _max_abs(a: Tensor, b: Tensor, what: str) -> float:
    """Largest absolute difference (``inf`` when either has non-finite entries)."""
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = (a.detach() - b.detach()).abs()
    if diff.numel() == 0:
        return 0.0
    return float(diff.max()) if bool(torch.isfinite(diff).all()) else float("inf")


def _scale(*tensors: Tensor | None) -> float:
    """``max(1, largest |entry|)`` of the tensors: tolerances are relative to the magnitudes involved."""
    top = 1.0
    for t in tensors:
        if t is not None and t.numel() and t.is_floating_point():
            finite = t.detach()[torch.isfinite(t.detach())]
            if finite.numel():
                top = max(top, float(finite.abs().max()))
    return top


def _expect(err: float, atol: float, what: str, scale: float = 1.0) -> None:
    """Fail unless ``err ≤ atol · scale`` (``scale`` from :func:`_scale`, 1 for absolute)."""
    if not err <= atol * scale:
        bound = f"atol {atol:g}" if scale == 1.0 else f"tolerance {atol * scale:.3g} (atol {atol:g} × magnitude {scale:.3g})"
        raise AssertionError(f"{what}: max abs error {err:.3g} > {bound}")


def default_latent(block: Invertible, x: Tensor, context: Tensor | None = None) -> Tensor:
    r"""Points in the output space to invert: standard normal of the output shape (fixed seed).

    A block that declares an ``input_domain`` may have a restricted output domain too, which the
    contract does not state; for those the latents are images :math:`f(x)` of the batch rolled by
    one sample.
    """
    with torch.no_grad():
        image = _copy(block, train=False)(x.roll(1, dims=0), context)[0]
    if getattr(block, "input_domain", None) is not None:
        return image
    out_shape = tuple(image.shape[1:])  # the real one: output_shape has a check of its own
    gen = torch.Generator().manual_seed(0)
    return torch.randn((x.shape[0], *out_shape), generator=gen, dtype=x.dtype)


# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------
def check_round_trip(
    block: Invertible,
    x: Tensor,
    y: Tensor | None = None,
    *,
    context: Tensor | None = None,
    atol: float = 1e-5,
    double: bool = False,
) -> None:
    """``inverse(forward(x)) ≈ x`` and ``forward(inverse(y)) ≈ y`` (max abs error ≤ ``atol`` times
    ``max(1, |value|)``).

    Runs in ``x``'s dtype (the kit uses float32, the training precision), or in float64 with
    ``double`` (the kit's large example: the float32 rounding of a dense map on 1,000 entries is a
    property of the precision, not of the block). ``y`` defaults to :func:`default_latent`.
    """
    if double:
        y = default_latent(block, x, context) if y is None else y
        x, y, context = x.double(), y.double(), _as(context, x.double())
    b = _copy(block, train=False, double=double)
    with torch.no_grad():
        z, _ = b(x, context)
        x_rec, _ = b.inverse(z, context)
        _expect(_max_abs(x_rec, x, "round trip"), atol, "round trip: inverse(forward(x)) differs from x",
                _scale(x, z))
        y = default_latent(block, x, context) if y is None else y
        x_of_y, _ = b.inverse(y, context)
        y_rec, _ = b(x_of_y, context)
        _expect(_max_abs(y_rec, y, "round trip"), atol, "round trip: forward(inverse(y)) differs from y",
                _scale(y, x_of_y))


def check_logdet_cancels(
    block: Invertible, x: Tensor, *, context: Tensor | None = None, atol: float = 1e-6
) -> None:
    """``forward``'s log-det at ``x`` plus ``inverse``'s log-det at ``f(x)`` is ≈ 0 (float64)."""
    b = _copy(block, train=False, double=True)
    x, context = x.double(), _as(context, x.double())
    with torch.no_grad(), exact_mode(b), _seeded():
        y, ld_forward = b(x, context)
        _, ld_inverse = b.inverse(y, context)
        err = _max_abs(ld_forward + ld_inverse, torch.zeros_like(ld_forward), "log-dets cancel")
    _expect(err, atol, "log-dets cancel: forward logdet(x) + inverse logdet(f(x)) is not 0", _scale(ld_forward))


def check_jacobian_logdet(
    block: Invertible,
    x: Tensor,
    y: Tensor | None = None,
    *,
    context: Tensor | None = None,
    atol: float = 1e-6,
    inverse_atol: float | None = None,
    inverse_from_forward: bool = False,
) -> None:
    r"""``logdet`` equals :math:`\log|\det J|` of the brute-force float64 Jacobian, both ways.

    Forward: the block's ``logdet`` at each ``x_i`` (computed on the whole batch) against
    ``slogdet(jacrev(f)(x_i))``. Inverse: the inverse's ``logdet`` at each ``y_i`` against
    ``slogdet(jacrev(f⁻¹)(y_i))``; for blocks with ``analytic_inverse = False`` (iterative
    inverses, which need not be differentiable) against :math:`-\log|\det J_f(f^{-1}(y_i))|`
    instead, which is the same quantity (also with ``inverse_from_forward``: the kit's choice for
    samples of over 1,000 elements, where differentiating an autoregressive inverse's thousand
    sequential passes would cost gigabytes). ``inverse_atol`` (default ``atol``) bounds the inverse
    direction. A singular Jacobian fails.
    """
    inverse_atol = atol if inverse_atol is None else inverse_atol
    y = default_latent(block, x, context) if y is None else y
    x, y = x.double(), y.double()
    context = _as(context, x)
    b = _copy(block, train=False, double=True)
    with exact_mode(b), _seeded():
        with torch.no_grad():
            _, ld_forward = b(x, context)
            x_of_y, ld_inverse = b.inverse(y, context)
        truth_forward = _brute_force(b, x, context, inverse=False)
        if getattr(block, "analytic_inverse", True) and not inverse_from_forward:
            truth_inverse = _brute_force(b, y, context, inverse=True)
        else:
            truth_inverse = -_brute_force(b, x_of_y, context, inverse=False)
    _expect(
        _max_abs(ld_forward, truth_forward, "forward logdet"),
        atol,
        "Jacobian: forward logdet differs from log|det ∂f/∂x| of the brute-force float64 Jacobian",
        _scale(truth_forward),
    )
    _expect(
        _max_abs(ld_inverse, truth_inverse, "inverse logdet"),
        inverse_atol,
        "Jacobian: inverse logdet differs from log|det ∂f⁻¹/∂y| of the brute-force float64 Jacobian",
        _scale(truth_inverse),
    )


def _brute_force(b: Invertible, points: Tensor, context: Tensor | None, inverse: bool) -> Tensor:
    """Per-sample brute-force log|det J| of ``b`` (or of its inverse) at ``points``."""
    out = []
    for i in range(points.shape[0]):
        ctx = _rows(context, i)
        call = b.inverse if inverse else b
        logabsdet, sign = brute_force_logdet(lambda v: call(v, ctx)[0], points[i : i + 1])
        if float(sign[0]) == 0.0:
            direction = "inverse" if inverse else "forward"
            raise AssertionError(f"Jacobian: the brute-force {direction} Jacobian at sample {i} is singular")
        out.append(logabsdet[0])
    return torch.stack(out)


def _both_ways(
    module: Invertible, x: Tensor, y: Tensor, context: Tensor | None, train: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(f(x), forward logdet, f⁻¹(y), inverse logdet)`` of a float64 copy in the given mode
    (a new copy per call, so state a call updates does not leak into the next)."""
    results: list[Tensor] = []
    for direction, points in (("forward", x), ("inverse", y)):
        b = _copy(module, train=train, double=True)
        call = b if direction == "forward" else b.inverse
        with torch.no_grad(), exact_mode(b), _seeded():
            results.extend(call(points, context))
    out_f, ld_f, out_i, ld_i = results
    return out_f, ld_f, out_i, ld_i


_PARTS = ("forward output", "forward logdet", "inverse output", "inverse logdet")


def check_batch_independence(
    block: Invertible,
    x: Tensor,
    y: Tensor | None = None,
    *,
    context: Tensor | None = None,
    atol: float = 1e-6,
) -> None:
    """Changing sample 0 of a batch (and its context) changes no other sample's output or log-det.

    Sample 0 is replaced by the last sample (so it stays in the input domain), in both
    directions (``y`` defaults to :func:`default_latent`), in eval and in train mode, in float64.
    Needs a batch of at least 2.
    """
    if x.shape[0] < 2:
        raise ValueError(f"batch independence needs a batch of at least 2 samples, got {x.shape[0]}")
    y = default_latent(block, x, context) if y is None else y
    x, y = x.double(), y.double()
    context = _as(context, x)

    def with_first_replaced(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        changed = t.clone()
        changed[0] = t[-1]
        return changed

    changed = (with_first_replaced(x), with_first_replaced(y), with_first_replaced(context))
    for train in (False, True):
        mode = "train" if train else "eval"
        original = _both_ways(block, x, y, context, train)
        perturbed = _both_ways(block, *changed, train)
        for part, a, b in zip(_PARTS, original, perturbed):
            what = f"batch independence ({mode} mode): changing sample 0 changed the {part} of other samples"
            _expect(_max_abs(a[1:], b[1:], part), atol, what, _scale(a[1:]))


def check_output_shape(block: Invertible, x: Tensor, *, context: Tensor | None = None) -> None:
    """``output_shape`` agrees with ``forward``'s output; ``inverse`` restores the input shape;
    log-dets are ``[batch]``; the number of elements per sample is kept."""
    b = _copy(block, train=False)
    in_shape = tuple(x.shape[1:])
    declared = tuple(block.output_shape(in_shape))
    with torch.no_grad():
        y, ld_forward = b(x, context)
        x_rec, ld_inverse = b.inverse(y, context)
    batch = x.shape[0]
    problems = []
    if tuple(y.shape[1:]) != declared:
        problems.append(f"output_shape({in_shape}) = {declared} but forward returns {tuple(y.shape[1:])}")
    if y.shape[0] != batch:
        problems.append(f"forward returns a batch of {y.shape[0]}, not {batch}")
    if y[0].numel() != x[0].numel():
        problems.append(f"forward maps {x[0].numel()} elements per sample to {y[0].numel()}")
    if tuple(x_rec.shape) != tuple(x.shape):
        problems.append(f"inverse returns shape {tuple(x_rec.shape)}, not the input's {tuple(x.shape)}")
    for name, ld in (("forward", ld_forward), ("inverse", ld_inverse)):
        if tuple(ld.shape) != (batch,):
            problems.append(f"{name} logdet has shape {tuple(ld.shape)}, not [batch] = ({batch},)")
    if problems:
        raise AssertionError("output shape: " + "; ".join(problems))


def check_gradients(
    block: Invertible,
    x: Tensor,
    *,
    context: Tensor | None = None,
    retries: int = 4,
    retry_std: float = 0.5,
    seed: int = 0,
) -> None:
    """Every trainable parameter gets a finite, not all-zero gradient from
    ``loss = Σ y² + Σ logdet`` on the batch (train mode, ``x``'s dtype).

    A parameter with no gradient at all (``None``: unused, detached) or a non-finite one fails at
    once. An all-zero gradient can also come from the values at hand (a dead ReLU unit in a
    hidden layer on a small batch), so those parameters are tried again ``retries`` times, each
    on a fresh batch of ``RETRY_BATCH`` inputs (in the block's ``input_domain``) after adding
    ``N(0, retry_std²)`` noise to every parameter, and fail only if their gradient is zero
    every time.
    """
    grads = _gradients(copy.deepcopy(block), x, context)
    missing = [n for n, g in grads.items() if g is None]
    bad = [n for n, g in grads.items() if g is not None and not bool(torch.isfinite(g).all())]
    problems = []
    if missing:
        problems.append(f"no gradient reaches {', '.join(missing)}")
    if bad:
        problems.append(f"non-finite gradient in {', '.join(bad)}")
    if problems:
        raise AssertionError("gradients: " + "; ".join(problems))
    zero = {n for n, g in grads.items() if g is not None and not bool(g.ne(0).any())}
    gen = torch.Generator().manual_seed(seed)
    domain = getattr(block, "input_domain", None)
    for _ in range(retries if zero else 0):
        redrawn = copy.deepcopy(block)
        with torch.no_grad():
            for p in redrawn.parameters():
                if p.is_floating_point():
                    p.add_(torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p), alpha=retry_std)
        batch = draw_inputs(tuple(x.shape[1:]), RETRY_BATCH, gen, domain, x.dtype)
        ctx = None if context is None else torch.randn(RETRY_BATCH, *context.shape[1:], generator=gen).to(context)
        retried = _gradients(redrawn, batch, ctx)
        zero -= {n for n in zero if (g := retried[n]) is not None and bool((g.ne(0) & g.isfinite()).any())}
    if zero:
        raise AssertionError(
            f"gradients: gradient all zero for {', '.join(sorted(zero))} (also on {retries} fresh "
            f"batches of {RETRY_BATCH} with N(0, {retry_std:g}²) noise on the parameters)"
        )


def _gradients(b: Invertible, x: Tensor, context: Tensor | None) -> dict[str, Tensor | None]:
    """Gradients of ``Σ y² + Σ logdet`` (train mode) for each trainable parameter of ``b``."""
    b.train()
    params = {n: p for n, p in b.named_parameters() if p.requires_grad and p.numel() > 0}
    if not params:
        return {}
    y, logdet = b(x, context)
    loss = y.pow(2).sum() + logdet.sum()
    if not loss.requires_grad:
        return {n: None for n in params}
    loss.backward()
    return {n: p.grad for n, p in params.items()}


def check_train_eval(
    block: Invertible,
    x: Tensor,
    y: Tensor | None = None,
    *,
    context: Tensor | None = None,
    atol: float = 1e-6,
) -> None:
    """After initialisation, train and eval mode compute the same function and log-det, both
    ways (float64). ``y`` defaults to :func:`default_latent`."""
    y = default_latent(block, x, context) if y is None else y
    x, y = x.double(), y.double()
    context = _as(context, x)
    in_train = _both_ways(block, x, y, context, train=True)
    in_eval = _both_ways(block, x, y, context, train=False)
    for part, a, b in zip(_PARTS, in_train, in_eval):
        _expect(_max_abs(a, b, part), atol, f"train/eval: the {part} differs between train and eval mode", _scale(b))


def check_state_dict(
    block: Invertible,
    x: Tensor,
    y: Tensor | None = None,
    *,
    fresh: Invertible,
    context: Tensor | None = None,
    atol: float = 1e-6,
) -> None:
    """Loading ``block.state_dict()`` into ``fresh`` (a newly built block of the same
    configuration, ideally built under another seed) gives the same function and log-det, both
    ways, in eval and in train mode (float64). ``y`` defaults to :func:`default_latent`."""
    dtype = next((t.dtype for t in block.state_dict().values() if t.is_floating_point()), x.dtype)
    loaded = copy.deepcopy(fresh).to(dtype=dtype)
    try:
        loaded.load_state_dict(block.state_dict())
    except (RuntimeError, KeyError) as exc:
        raise AssertionError(f"state_dict: loading into a freshly built block failed: {exc}") from exc
    y = default_latent(block, x, context) if y is None else y
    x, y = x.double(), y.double()
    context = _as(context, x)
    for train in (False, True):
        mode = "train" if train else "eval"
        original = _both_ways(block, x, y, context, train)
        reloaded = _both_ways(loaded, x, y, context, train)
        for part, a, b in zip(_PARTS, original, reloaded):
            _expect(_max_abs(a, b, part), atol, f"state_dict ({mode} mode): the {part} of the reloaded block differs",
                    _scale(a))


def check_volume_preserving(
    block: Invertible, x: Tensor, *, context: Tensor | None = None, atol: float = 1e-6
) -> None:
    """A block that declares ``volume_preserving = True`` returns zero log-dets both ways."""
    b = _copy(block, train=False, double=True)
    x = x.double()
    context = _as(context, x)
    with torch.no_grad(), exact_mode(b), _seeded():
        y, ld_forward = b(x, context)
        _, ld_inverse = b.inverse(y, context)
    for name, ld in (("forward", ld_forward), ("inverse", ld_inverse)):
        err = _max_abs(ld, torch.zeros_like(ld), f"{name} logdet")
        what = f"volume preserving: the block declares volume_preserving = True but its {name} logdet is not 0"
        _expect(err, atol, what)




def check_memory_saving(
    block: Invertible,
    x: Tensor,
    *,
    context: Tensor | None = None,
    atol: float = 1e-5,
    atol64: float = 1e-10,
    seed: int = 0,
) -> None:
    r"""Memory-saving execution (:mod:`revkit.memory_saving`) gives plain autograd's gradients.

    In train mode, with ``loss = Σ r ⊙ y + Σ w ⊙ logdet`` for fixed random weights ``r, w``, the
    gradients with respect to ``x``, ``context`` and every trainable parameter must agree within
    ``atol`` in float32 and ``atol64`` in float64 (errors relative to the gradient's largest entry
    when that exceeds 1), and so must ``y`` and ``logdet``. Both runs start from the same random
    state, so stochastic sub-networks draw alike. A block with ``analytic_inverse = False`` cannot
    run this way: the check then verifies that memory-saving execution refuses it.
    """
    if not getattr(block, "analytic_inverse", True):
        try:
            with torch.enable_grad():
                run_memory_saving([copy.deepcopy(block)], x.detach().clone().requires_grad_(), context)
        except ValueError:
            return
        raise AssertionError("memory saving: a block with analytic_inverse = False was not refused")
    for double, tol in ((False, atol), (True, atol64)):
        dtype = torch.float64 if double else x.dtype
        plain = _saving_gradients(_copy(block, train=True, double=double), x.to(dtype), context, False, seed)
        saving = _saving_gradients(_copy(block, train=True, double=double), x.to(dtype), context, True, seed)
        label = "float64" if double else "float32"
        for name, a in plain.items():
            b = saving[name]
            if (a is None) != (b is None):
                raise AssertionError(f"memory saving ({label}): gradient of {name} is "
                                     f"{'missing' if b is None else 'present'} only with memory saving")
            if a is None or b is None:
                continue
            scale = max(1.0, float(a.detach().abs().max())) if a.numel() else 1.0
            _expect(_max_abs(a, b, f"memory saving ({label}) {name}") / scale, tol,
                    f"memory saving ({label}): {name} differs from plain autograd")


def _saving_gradients(
    b: Invertible, x: Tensor, context: Tensor | None, saving: bool, seed: int
) -> dict[str, Tensor | None]:
    """``y``, ``logdet`` and the gradients of ``Σ r⊙y + Σ w⊙logdet`` for ``x``, ``context`` and the
    trainable parameters of ``b`` (in ``x``'s dtype), plain or memory-saving, from a seeded random state."""
    xs = x.detach().clone().requires_grad_(True)
    ctx = None if context is None else context.detach().to(x.dtype).clone().requires_grad_(True)
    with _seeded(seed), torch.enable_grad():
        y, logdet = run_memory_saving([b], xs, ctx) if saving else b(xs, ctx)
        gen = torch.Generator().manual_seed(seed + 1)
        r = torch.randn(y.shape, generator=gen, dtype=torch.float64).to(y)
        w = torch.randn(logdet.shape, generator=gen, dtype=torch.float64).to(logdet)
        loss = (r * y).sum() + (w * logdet).sum()
        params = {n: p for n, p in b.named_parameters() if p.requires_grad}
        targets = {"x": xs, **({"context": ctx} if ctx is not None else {}), **params}
        if not loss.requires_grad:
            grads: tuple[Tensor | None, ...] = (None,) * len(targets)
        else:
            grads = torch.autograd.grad(loss, list(targets.values()), allow_unused=True)
    out: dict[str, Tensor | None] = {"y": y.detach(), "logdet": logdet.detach()}
    out.update({name: g for name, g in zip(targets, grads)})
    return out


# --------------------------------------------------------------------------------------------
# gradients against finite differences
# --------------------------------------------------------------------------------------------
#: the loosest relative tolerance a block may declare for its gradients (``gradient_rtol``).
MAX_GRADIENT_RTOL = 1e-2


def check_finite_differences(
    block: Invertible,
    x: Tensor,
    y: Tensor | None = None,
    *,
    context: Tensor | None = None,
    rtol: float = 1e-5,
    random_directions: int = 1,
    memory_saving: bool = True,
    joint_parameters: bool = False,
    inverse: bool = True,
    seed: int = 0,
) -> None:
    r"""Autograd's gradients agree with central finite differences (float64, exact log-det).

    For :math:`L = \sum w ⊙ \mathrm{out} + \sum v ⊙ \mathrm{logdet}` with fixed random ``w, v``
    (:mod:`revkit.testing.finite_differences`), the directional derivative along the gradient's own
    direction and along ``random_directions`` random unit directions of each leaf (the input, the
    context, every trainable parameter) must match the central difference of the values:

    * ``forward`` at ``x``, with plain autograd, in eval mode and in train mode (a path detached
      only ``if self.training`` is the one training differentiates; buffers a training pass
      writes are restored before every evaluation, so each computes the same function);
    * ``forward`` at ``x`` under memory-saving execution in train mode
      (:func:`~revkit.memory_saving.run_memory_saving`, the gradients its backward rebuilds with
      ``inverse``/``reverse_grad``), for blocks with ``analytic_inverse = True`` and ``memory_saving``;
    * ``inverse`` at ``y`` (default :func:`default_latent`) in eval mode, for blocks with
      ``analytic_inverse = True`` (an iterative inverse is not differentiated through its
      iterations, by design) and ``inverse``.

    ``rtol`` is relative to the gradient's norm. A block whose gradient is a documented
    approximation may declare a class attribute ``gradient_rtol`` (at most
    :data:`MAX_GRADIENT_RTOL`): ``iresnet``'s spectral normalisation holds the power iteration's
    vector constant in the backward pass (Miyato et al., 2018), exact only once the iteration has
    converged.

    Blocks with ``exact_logdet = False`` run inside ``exact_logdet_mode()``; their estimator's
    gradient is :func:`check_logdet_estimator`'s business. ``joint_parameters`` treats all
    parameters as one leaf (the kit's choice for samples of over 1,000 elements).
    """
    from revkit.testing.finite_differences import directional_mismatches

    declared = float(getattr(block, "gradient_rtol", rtol))
    if not declared <= MAX_GRADIENT_RTOL:
        raise AssertionError(
            f"finite differences: the block declares gradient_rtol = {declared:g}, more than the {MAX_GRADIENT_RTOL:g} "
            "the kit accepts; a gradient that loose is not a gradient"
        )
    rtol = max(rtol, declared)
    analytic = bool(getattr(block, "analytic_inverse", True))
    y = default_latent(block, x, context) if (y is None and analytic) else y
    x64, ctx = x.double(), _as(context, x.double())
    runs: list[tuple[str, bool, Tensor, bool, bool]] = [
        ("forward (eval mode)", False, x64, False, False),
        ("forward (train mode)", True, x64, False, False),
    ]
    if analytic and memory_saving:
        runs.append(("forward under memory-saving execution (train mode)", True, x64, False, True))
    if analytic and inverse and y is not None:
        runs.append(("inverse (eval mode)", False, y.double(), True, False))
    problems = []
    for label, train, points, inverse, saving in runs:
        b = _copy(block, train=train, double=True)
        found = directional_mismatches(
            b, points, ctx, inverse=inverse, memory_saving=saving, random_directions=random_directions,
            rtol=rtol, seed=seed, joint_parameters=joint_parameters,
            enter=lambda b=b: _stacked(exact_mode(b), _seeded(seed)),
        )
        problems.extend(f"{label}: {m}" for m in found)
    if problems:
        shown = "; ".join(problems[:4]) + (f"; … {len(problems) - 4} more" if len(problems) > 4 else "")
        raise AssertionError(
            "finite differences: autograd's gradient of L = Σ w·out + Σ v·logdet disagrees with central "
            f"differences of its values (a detached or wrongly differentiated path): {shown}"
        )


@contextlib.contextmanager
def _stacked(*contexts: contextlib.AbstractContextManager[object]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for c in contexts:
            stack.enter_context(c)
        yield


# --------------------------------------------------------------------------------------------
# stochastic log-det estimators (blocks with exact_logdet = False)
# --------------------------------------------------------------------------------------------
#: estimates drawn per sample by :func:`check_logdet_estimator`, and its tolerance in standard errors.
ESTIMATOR_DRAWS = 64
ESTIMATOR_Z = 4.0
#: a declared bias bound larger than this fraction of the log-det's magnitude says nothing.
VACUOUS_BIAS = 0.5


def check_logdet_estimator(
    block: Invertible,
    x: Tensor,
    *,
    context: Tensor | None = None,
    draws: int = ESTIMATOR_DRAWS,
    z: float = ESTIMATOR_Z,
    atol: float = 1e-6,
    modes: tuple[str, ...] = ("train", "eval"),
    vacuous: float = VACUOUS_BIAS,
    gradient: bool = True,
) -> None:
    r"""A stochastic ``logdet`` estimate is right on average, in training and in evaluation mode.

    In each mode (``train``: the estimator training differentiates; ``eval``: the one evaluation
    reports), float64, each draw on a fresh copy of the block (so state a pass updates, such as a
    power iteration, is alike for every draw) under seed ``k = 0 … draws−1``:

    1. **Value.** Per sample, the mean :math:`\bar\ell` of the ``draws`` forward log-dets, with
       standard error :math:`s`, and the exact :math:`\ell` (``exact_logdet_mode()``, same mode) satisfy
       :math:`|\bar\ell - \ell| ≤ z\,s + b + \mathrm{atol}·\max(1,|\ell|)`, where :math:`b` is the block's
       declared bias bound ``logdet_bias_bound(x)`` in that mode (0 when it declares none: then the
       estimator must be unbiased).
    2. **The bound says something.** :math:`b ≤` ``vacuous`` :math:`· M` with
       :math:`M = \sum_j |\log σ_j(J)|`, the size of the log-volume change (singular values of the
       brute-force Jacobian): a bound as large as the quantity it bounds would let any estimator pass.
    3. **Gradient** (``gradient``, estimators that declare no bias in that mode). For
       :math:`L = \sum_i v_i \hat\ell_i` with fixed random ``v``, the mean over draws of
       :math:`∇_q L · d` for each leaf ``q`` (input, context, every parameter) and direction ``d``
       (the exact gradient's own and a random one) lies within ``z`` standard errors (plus
       :math:`10^{-6}·|∇_q L_{exact}|`) of the exact :math:`∇_q \sum_i v_i \ell_i · d`. An unbiased estimate of the
       log-det whose gradient is biased trains the wrong model. (A truncated series, biased by
       construction, has no gradient bound to check against; its exact-mode gradients are
       :func:`check_finite_differences`'s.)

    With ``z = 4`` an unbiased estimator fails by chance about once in 16,000 comparisons (for
    nearly normal means). Blocks with ``exact_logdet = True`` are not checked.
    """
    if getattr(block, "exact_logdet", True):
        return
    x, context = x.double(), _as(context, x.double())
    v = torch.randn(x.shape[0], generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    for mode in modes:
        train = mode == "train"
        probe = _copy(block, train=train, double=True)
        bound_fn = getattr(probe, "logdet_bias_bound", None)
        with torch.no_grad(), _seeded():
            bias = (bound_fn(x) if callable(bound_fn) else x.new_zeros(x.shape[0])).to(x)
        differentiate = gradient and not bool((bias > 0).any())
        exact, exact_grads = _estimate(block, x, context, train, None, v, differentiate)
        estimates = [_estimate(block, x, context, train, k, v, differentiate) for k in range(draws)]
        stacked = torch.stack([e for e, _ in estimates])
        mean, stderr = stacked.mean(dim=0), stacked.std(dim=0) / draws**0.5
        allowed = z * stderr + bias + atol * exact.abs().clamp(min=1.0)
        excess = (mean - exact).abs() - allowed
        worst = int(excess.argmax())
        if float(excess[worst]) > 0:
            raise AssertionError(
                f"log-det estimator ({mode} mode): at sample {worst} the mean of {draws} estimates is "
                f"{float(mean[worst]):.6g} but the exact log-det is {float(exact[worst]):.6g}; the difference "
                f"{float((mean - exact)[worst].abs()):.3g} exceeds {z:g} standard errors "
                f"({float(z * stderr[worst]):.3g}) plus the declared bias bound {float(bias[worst]):.3g}"
            )
        if bool((bias > 0).any()):
            magnitude = _log_volume(probe, x, context)
            ratio = bias / magnitude.clamp(min=1e-12)
            worst = int(ratio.argmax())
            if float(ratio[worst]) > vacuous:
                raise AssertionError(
                    f"log-det estimator ({mode} mode): the declared bias bound {float(bias[worst]):.3g} at sample "
                    f"{worst} is vacuous: it is {float(ratio[worst]):.3g}× the size of the log-volume change it "
                    f"bounds (Σ|log σ_j(J)| = {float(magnitude[worst]):.3g}; allowed: {vacuous:g}×), so any "
                    "estimator would pass within it; declare a tighter bound or use more terms"
                )
        elif differentiate:
            _check_estimator_gradient(exact_grads, [g for _, g in estimates], z, mode)


def _estimate(
    block: Invertible, x: Tensor, context: Tensor | None, train: bool, seed: int | None, v: Tensor, gradient: bool
) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward log-det of a fresh float64 copy in the given mode (exact when ``seed`` is None,
    else the estimator under that seed), and the gradients of ``Σ v·logdet`` for every leaf."""
    b = _copy(block, train=train, double=True)
    xs = x.detach().clone().requires_grad_(gradient)
    ctx = None if context is None else context.detach().clone().requires_grad_(gradient)
    leaves = {"input": xs, **({"context": ctx} if ctx is not None else {}),
              **{n: p for n, p in b.named_parameters() if p.requires_grad and p.numel() > 0}}
    mode = exact_mode(b) if seed is None else contextlib.nullcontext()
    with mode, _seeded(0 if seed is None else seed), torch.set_grad_enabled(gradient):
        logdet = b(xs, ctx)[1]
    grads: dict[str, Tensor] = {}
    if gradient:
        loss = (v * logdet).sum()
        found = (torch.autograd.grad(loss, list(leaves.values()), allow_unused=True) if loss.requires_grad
                 else (None,) * len(leaves))
        grads = {n: torch.zeros_like(t) if g is None else g.detach() for (n, t), g in zip(leaves.items(), found)}
    return logdet.detach(), grads


def _check_estimator_gradient(
    exact: dict[str, Tensor], draws: list[dict[str, Tensor]], z: float, mode: str
) -> None:
    gen = torch.Generator().manual_seed(2)
    for name, g in exact.items():
        flat = g.reshape(-1)
        norm = float(flat.norm())
        random = torch.randn(flat.shape, generator=gen, dtype=flat.dtype)
        directions = [("random", random / random.norm())]
        if norm > 0:
            directions.insert(0, ("exact gradient's", flat / norm))
        for label, d in directions:
            truth = float(flat @ d)
            samples = torch.stack([dr[name].reshape(-1) @ d for dr in draws])
            mean, stderr = float(samples.mean()), float(samples.std()) / len(draws) ** 0.5
            allowed = z * stderr + 1e-6 * max(norm, 1e-12)
            if abs(mean - truth) > allowed:
                raise AssertionError(
                    f"log-det estimator ({mode} mode): the gradient of Σ v·logdet is biased: along the {label} "
                    f"direction of {name} the mean of {len(draws)} estimated directional derivatives is {mean:.6g} "
                    f"but the exact one is {truth:.6g}; the difference {abs(mean - truth):.3g} exceeds {z:g} "
                    f"standard errors ({z * stderr:.3g})"
                )


def _log_volume(b: Invertible, x: Tensor, context: Tensor | None) -> Tensor:
    r""":math:`\sum_j |\log σ_j(J_f(x_i))|` per sample from the brute-force Jacobian (exact mode)."""
    from revkit.testing.jacobian import jacobian

    shape = x.shape[1:]
    out = []
    with exact_mode(b), _seeded():
        for i in range(x.shape[0]):
            ctx = _rows(context, i)

            def flat(v: Tensor) -> Tensor:
                return b(v.reshape(1, *shape), ctx)[0].reshape(-1)

            sigma = torch.linalg.svdvals(jacobian(flat, x[i].reshape(-1)).detach())
            out.append(sigma.log().abs().sum())
    return torch.stack(out)


__all__ = [
    "check_batch_independence",
    "check_finite_differences",
    "check_gradients",
    "check_jacobian_logdet",
    "check_logdet_cancels",
    "check_logdet_estimator",
    "check_memory_saving",
    "check_output_shape",
    "check_round_trip",
    "check_state_dict",
    "check_train_eval",
    "check_volume_preserving",
    "default_latent",
    "exact_mode",
]

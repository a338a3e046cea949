r"""``check_block``: run every conformance check on hypothesis-drawn shapes, parameters and inputs.

For each example hypothesis draws a per-sample shape, a parameter dictionary and an input seed;
the kit builds the block (a :class:`~revkit.errors.ShapeError` at construction rejects the
example), runs one forward pass in train mode on a separate batch (data-dependent
initialisation, e.g. actnorm's), adds small Gaussian noise to every floating parameter (so
zero-initialised couplings are neither the identity nor volume preserving) and runs the
selected checks of :mod:`revkit.testing.checks`. A failure is an :class:`AssertionError` naming
the block, shape, parameters, check and size of the error; hypothesis shrinks it first.

Example (in a plugin's test suite)::

    from revkit.testing import check_block

    def test_my_block_conforms():
        check_block("my_block")                      # a registered name …
        check_block(MyBlock, params={"hidden": 4})   # … or a factory (input_shape, **params)

Adding a check: write ``check_…(block, x, …)`` in
:mod:`revkit.testing.checks`, then add a runner ``(case) -> None`` to :data:`RUNNERS` and, once it
should run by default, its name to :data:`ALL`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from torch import Tensor

from revkit.errors import ShapeError, did_you_mean
from revkit.invertible import Invertible, Shape
from revkit.plugins.registry import Registries
import revkit.testing.checks as check_fns
from revkit.testing.strategies import KitError, draw_inputs, params_strategy, shapes_strategy

Factory = Callable[..., Invertible]
ShapesArg = Union[Sequence[Shape], st.SearchStrategy[Shape], None]
ParamsChoice = Union[Mapping[str, Any], st.SearchStrategy[dict[str, Any]]]
ParamsArg = Union[ParamsChoice, Callable[[Shape], ParamsChoice], None]

#: samples per checked batch, and in the batch of the initialising forward pass.
BATCH = 3
INIT_BATCH = 8
#: size of the ``context`` vector passed to conditional blocks.
CONTEXT_SIZE = 3


@dataclass
class Case:
    """One drawn configuration, built and initialised, with the batches the checks use.

    ``block`` is float32, initialised and perturbed; ``fresh`` is built with the same shape and
    parameters under another seed and never initialised (for the ``state_dict`` check); ``x``
    lies in the input domain, ``y`` in the output space; ``context`` is ``None`` unless the
    block is conditional.
    """

    block: Invertible
    fresh: Invertible
    x: Tensor
    y: Tensor
    context: Tensor | None
    atol: float
    logdet_atol: float
    inverse_atol: float

    @property
    def analytic(self) -> bool:
        return bool(getattr(self.block, "analytic_inverse", True))

    @property
    def inverse_tol(self) -> float:
        """Round-trip tolerance: ``atol``, or ``inverse_atol`` for iterative inverses."""
        return self.atol if self.analytic else self.inverse_atol

    @property
    def inverse_logdet_tol(self) -> float:
        """Tolerance of log-dets that depend on an iterative inverse's accuracy."""
        return self.logdet_atol if self.analytic else max(self.logdet_atol, self.inverse_atol)


def _volume_preserving(case: Case) -> None:
    if getattr(case.block, "volume_preserving", False):
        check_fns.check_volume_preserving(case.block, case.x, context=case.context, atol=case.logdet_atol)


#: how ``check_block`` calls each public check on a drawn :class:`Case`.
RUNNERS: dict[str, Callable[[Case], None]] = {
    "output_shape": lambda c: check_fns.check_output_shape(c.block, c.x, context=c.context),
    "round_trip": lambda c: check_fns.check_round_trip(c.block, c.x, c.y, context=c.context, atol=c.inverse_tol),
    "logdet_cancels": lambda c: check_fns.check_logdet_cancels(
        c.block, c.x, context=c.context, atol=c.inverse_logdet_tol
    ),
    "jacobian": lambda c: check_fns.check_jacobian_logdet(
        c.block, c.x, c.y, context=c.context, atol=c.logdet_atol, inverse_atol=c.inverse_logdet_tol
    ),
    "volume_preserving": _volume_preserving,
    "batch_independence": lambda c: check_fns.check_batch_independence(
        c.block, c.x, c.y, context=c.context, atol=c.logdet_atol
    ),
    "gradients": lambda c: check_fns.check_gradients(c.block, c.x, context=c.context),
    "train_eval": lambda c: check_fns.check_train_eval(c.block, c.x, c.y, context=c.context, atol=c.logdet_atol),
    "state_dict": lambda c: check_fns.check_state_dict(
        c.block, c.x, c.y, fresh=c.fresh, context=c.context, atol=c.logdet_atol
    ),
    "memory_saving": lambda c: check_fns.check_memory_saving(
        c.block, c.x, context=c.context, atol=c.atol
    ),
}

# stochastic log-det estimators: the mean against the exact log-det (a no-op for exact blocks)
RUNNERS["logdet_estimator"] = lambda c: check_fns.check_logdet_estimator(c.block, c.x, context=c.context)

#: every check, in the order they run (cheap and fundamental first).
ALL: tuple[str, ...] = tuple(RUNNERS)


def check_block(
    block: str | Factory,
    *,
    shapes: ShapesArg = None,
    params: ParamsArg = None,
    registries: Registries | None = None,
    max_examples: int = 15,
    atol: float = 1e-5,
    logdet_atol: float = 1e-6,
    inverse_atol: float = 1e-4,
    checks: Iterable[str] = ALL,
    seed: int = 0,
    perturb: float = 0.05,
    shrink: bool = True,
) -> None:
    """Check that a block honours the invertible-module contract on drawn configurations.

    Args:
        block: a registered block name (looked up in ``registries``, default
            :func:`~revkit.plugins.get_registries`) or a factory ``(input_shape, **params)``.
        shapes: per-sample shapes to try (a list or a hypothesis strategy); default: drawn from
            the block's ``supported_ranks`` by :func:`~revkit.testing.strategies.shapes_strategy`.
        params: a parameter dict, a strategy of dicts, a function ``input_shape → dict or
            strategy`` (for parameters that depend on the shape, such as a reshape target), or
            ``None`` to draw them from the block's ``Params`` with
            :func:`~revkit.testing.strategies.params_strategy`.
        registries: where to look up a block name.
        max_examples: hypothesis examples (configurations) to try.
        atol: max abs error of the float32 round trip.
        logdet_atol: max abs error of float64 log-det comparisons.
        inverse_atol: round-trip tolerance for blocks with ``analytic_inverse = False``.
        checks: names from :data:`ALL` to run.
        seed: seeds construction and the parameter noise (the fresh block uses ``seed + 1``).
        perturb: standard deviation of the noise added to every floating parameter.
        shrink: let hypothesis shrink a failing example to a minimal one (slower to fail).

    Raises:
        AssertionError: a check failed (the message names block, shape, params, check, error).
        KitError: an unknown block name or check, or parameters the kit cannot draw.
    """
    name, factory = _resolve(block, registries)
    selected = _select(checks)
    shape_st = _shapes(shapes, factory)
    params_for = _params(params, factory)

    phases = tuple(Phase) if shrink else (Phase.explicit, Phase.reuse, Phase.generate)

    @settings(max_examples=max_examples, deadline=None, phases=phases)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        shape = tuple(data.draw(shape_st, label="shape"))
        params_st, validate = params_for(shape)
        kwargs = dict(data.draw(params_st, label="params"))
        input_seed = data.draw(st.integers(0, 2**31 - 1), label="input_seed")
        if validate:
            try:
                kwargs = _validated(factory, kwargs)
            except ValidationError:
                assume(False)
        case = _build(factory, shape, kwargs, input_seed, seed, perturb, (atol, logdet_atol, inverse_atol))
        for check in selected:
            try:
                RUNNERS[check](case)
            except Exception as exc:
                what = str(exc) if isinstance(exc, AssertionError) else f"raised {type(exc).__name__}: {exc}"
                raise AssertionError(
                    f"block {name!r}, per-sample shape {shape}, params {kwargs}: check {check!r} failed: {what}"
                ) from exc

    run()


# --------------------------------------------------------------------------------------------
# setting up
# --------------------------------------------------------------------------------------------
def _resolve(block: str | Factory, registries: Registries | None) -> tuple[str, Factory]:
    if not isinstance(block, str):
        return getattr(block, "__name__", repr(block)), block
    if registries is None:
        from revkit.plugins import get_registries

        registries = get_registries()
    factory = registries.blocks.get(block)
    if factory is None:
        names = registries.blocks.names()
        raise KitError(
            f"no block named {block!r} is registered{did_you_mean(block, names)}; "
            f"registered: {', '.join(names) or '(none)'}"
        )
    return block, factory


def _select(names: Iterable[str]) -> tuple[str, ...]:
    selected = tuple(names)
    for n in selected:
        if n not in RUNNERS:
            raise KitError(f"unknown check {n!r}{did_you_mean(n, RUNNERS)}; checks: {', '.join(ALL)}")
    return selected


def _shapes(shapes: ShapesArg, factory: Factory) -> st.SearchStrategy[Shape]:
    if shapes is None:
        return shapes_strategy(getattr(factory, "supported_ranks", (1, 3)))
    if isinstance(shapes, st.SearchStrategy):
        return shapes
    listed = [tuple(s) for s in shapes]
    if not listed:
        raise KitError("shapes is an empty list; give at least one per-sample shape")
    return st.sampled_from(listed)


def _params_model(factory: Factory) -> type[BaseModel] | None:
    model = getattr(factory, "Params", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


ParamsFor = Callable[[Shape], tuple[st.SearchStrategy[dict[str, Any]], bool]]


def _params(params: ParamsArg, factory: Factory) -> ParamsFor:
    """For a drawn shape: the strategy of parameter dicts, and whether drawn dicts still need
    validating (a fixed dict is validated when it is first seen, so a typo is an error rather
    than a rejected example)."""
    model = _params_model(factory)
    if params is None:
        drawn = params_strategy(model) if model is not None else st.just({})
        return lambda shape: (drawn, model is not None)
    if isinstance(params, (Mapping, st.SearchStrategy)):
        fixed = _choice(params, factory, model)
        return lambda shape: fixed
    return lambda shape: _choice(params(shape), factory, model)  # type: ignore[operator]


def _choice(
    choice: ParamsChoice, factory: Factory, model: type[BaseModel] | None
) -> tuple[st.SearchStrategy[dict[str, Any]], bool]:
    if isinstance(choice, st.SearchStrategy):
        return choice, model is not None
    given_params = dict(choice)
    if model is not None:
        given_params = _validated(factory, given_params)
    return st.just(given_params), False


def _validated(factory: Factory, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Validate with the block's ``Params`` (as a spec would) and keep the keys given."""
    model = _params_model(factory)
    assert model is not None
    parsed = model.model_validate(kwargs)
    return {k: getattr(parsed, k) for k in kwargs}


def _takes_context_size(factory: Factory) -> bool:
    if getattr(factory, "conditional", False):
        return True
    try:
        return "context_size" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _construct(factory: Factory, shape: Shape, kwargs: dict[str, Any], seed: int) -> Invertible:
    extra = {"context_size": CONTEXT_SIZE} if _takes_context_size(factory) else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = factory(shape, **kwargs, **extra)
    if getattr(block, "conditional", False) and not extra:
        raise KitError(
            f"{type(block).__name__} is conditional but its factory takes no context_size; pass the "
            "block class, or a factory with a context_size keyword"
        )
    return block


def _build(
    factory: Factory,
    shape: Shape,
    kwargs: dict[str, Any],
    input_seed: int,
    seed: int,
    perturb: float,
    tolerances: tuple[float, float, float],
) -> Case:
    try:
        block = _construct(factory, shape, kwargs, seed)
    except ShapeError:
        assume(False)
    except KitError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"building the block for per-sample shape {shape} with params {kwargs} raised "
            f"{type(exc).__name__}: {exc} (only ShapeError marks a shape the block cannot take)"
        ) from exc
    fresh = _construct(factory, shape, kwargs, seed + 1)
    gen = torch.Generator().manual_seed(input_seed)
    domain = getattr(block, "input_domain", None)
    conditional = bool(getattr(block, "conditional", False))

    def context(n: int) -> Tensor | None:
        return torch.randn(n, CONTEXT_SIZE, generator=gen) if conditional else None

    warmup = draw_inputs(shape, INIT_BATCH, gen, domain)
    block.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block(warmup, context(INIT_BATCH))
    perturb_parameters(block, perturb, seed)
    block.eval()
    x = draw_inputs(shape, BATCH, gen, domain)
    ctx = context(BATCH)
    if domain is None:  # the real output shape: a wrong output_shape is its own check's finding
        with torch.no_grad():
            out_shape = tuple(block(x, ctx)[0].shape[1:])
        y = torch.randn((BATCH, *out_shape), generator=gen)
    else:
        y = check_fns.default_latent(block, draw_inputs(shape, BATCH, gen, domain), ctx)
    return Case(block, fresh, x, y, ctx, *tolerances)


def perturb_parameters(block: torch.nn.Module, std: float, seed: int = 0) -> None:
    """Add ``N(0, std²)`` noise to every floating parameter, in place, from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            if p.is_floating_point():
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                p.add_(noise.to(device=p.device, dtype=p.dtype), alpha=std)


__all__ = ["ALL", "RUNNERS", "Case", "check_block", "perturb_parameters"]

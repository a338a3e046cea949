r"""``check_block``: run every conformance check on hypothesis-drawn shapes, parameters and inputs.

For each example hypothesis draws a per-sample shape, a parameter dictionary, an input seed and a
*parameter regime*; the kit builds the block (a :class:`~revkit.errors.ShapeError` at
construction rejects the example; any other exception fails it), runs one forward pass in train
mode on a separate batch (data-dependent initialisation, e.g. actnorm's), then sets the
parameters by the regime:

* ``"near"``: small Gaussian noise (``perturb``) on every floating parameter, so zero-initialised
  couplings are neither the identity nor volume preserving;
* ``"trained"``: :data:`TRAIN_STEPS` Adam steps (learning rate :data:`TRAIN_LR`) of maximum
  likelihood under a standard normal on random non-standard data (per-entry random scale and
  shift), then the same small noise: parameters at the scale training reaches, far from the
  identity.

and runs the selected checks of :mod:`revkit.testing.checks`. Tolerances are relative to the
magnitudes involved (``atol · max(1, |value|)``). After the drawn examples, one *large* example per
call checks a sample of over 1,000 elements (:data:`LARGE_SHAPES`, odd sides and 3 channels first)
with the checks in :data:`LARGE_CHECKS`, one sample at a time (the round trip in float64, the inverse log-det against the
forward Jacobian at the inverse's output, gradients in the forward direction only; in the ``"near"`` regime, its noise
shrunk by :math:`\sqrt{64/D}`), and one *odd* example a shape with an odd element count (else 3
channels) that the block accepts (:data:`ODD_SHAPES`), whatever shapes were given.

Runs are derandomized (the same examples every time) unless ``derandomize=False`` or the
environment variable ``REVKIT_KIT_EXPLORE=1`` asks for fresh random examples. A failure is an
:class:`AssertionError` naming the block, shape, parameters, regime, seeds, check and size of the
error, ending with the :func:`check_case` call that reproduces it without hypothesis.

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
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from torch import Tensor

from revkit.errors import ShapeError, did_you_mean
from revkit.invertible import Invertible, Shape, numel
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
#: the ``"trained"`` regime: Adam steps, learning rate and batch of the random maximum-likelihood objective.
TRAIN_STEPS = 20
TRAIN_LR = 0.05
TRAIN_BATCH = 16
#: no-grad training-mode passes after the parameters are set, so running estimates (a spectral
#: norm's power iteration) settle as they do in training.
SETTLE_PASSES = 25
#: parameter regimes an example draws from (see the module docstring).
REGIMES = ("near", "trained")
#: per-sample shapes of over 1,000 elements tried, in order, for the large example (per rank).
LARGE_SHAPES: dict[int, tuple[Shape, ...]] = {
    1: ((1031,), (1024,)),
    3: ((3, 19, 19), (3, 20, 20), (4, 16, 16), (1, 32, 32)),
}
#: per-sample shapes tried, tier by tier, for the odd example: odd element counts first, then 3
#: channels; the first tier with a shape the block accepts is used.
ODD_SHAPES: dict[int, tuple[tuple[Shape, ...], ...]] = {
    1: (((3,), (5,), (7,)),),
    3: (((3, 3, 3), (1, 3, 5), (3, 5, 3), (1, 3, 3)), ((3, 2, 2), (3, 4, 4), (3, 2, 4))),
}
#: environment variable that turns derandomization off for exploratory runs.
EXPLORE_ENV = "REVKIT_KIT_EXPLORE"


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
    factory: Factory | None = None
    shape: Shape = ()
    large: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

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


def _shape_errors(case: Case) -> None:
    """A rank the block does not list in ``supported_ranks`` is refused with a ShapeError that says so."""
    if case.factory is None or case.large:
        return
    ranks = tuple(getattr(case.block, "supported_ranks", (1, 3)))
    kwargs = case.kwargs
    for rank, shape in ((1, (5,)), (2, (3, 5)), (3, (3, 5, 5)), (4, (2, 3, 3, 3))):
        if rank in ranks:
            continue
        try:
            _construct(case.factory, shape, kwargs, 0)
        except ShapeError as exc:
            if not str(exc).strip():
                raise AssertionError(f"shape errors: the ShapeError for per-sample shape {shape} has no message") from exc
            continue
        except KitError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"shape errors: per-sample shape {shape} (rank {rank}, not in supported_ranks {ranks}) raised "
                f"{type(exc).__name__}: {exc}; a refused shape must raise revkit.ShapeError"
            ) from exc
        raise AssertionError(
            f"shape errors: the block was built for per-sample shape {shape} although its supported_ranks {ranks} "
            "exclude rank {rank}; raise revkit.ShapeError in __init__ (revkit.check_rank does)"
            .replace("{rank}", str(rank))
        )


def _volume_preserving(case: Case) -> None:
    if getattr(case.block, "volume_preserving", False):
        check_fns.check_volume_preserving(case.block, case.x, context=case.context, atol=case.logdet_atol)


#: how ``check_block`` calls each public check on a drawn :class:`Case`.
RUNNERS: dict[str, Callable[[Case], None]] = {
    "output_shape": lambda c: check_fns.check_output_shape(c.block, c.x, context=c.context),
    "round_trip": lambda c: check_fns.check_round_trip(
        c.block, c.x, c.y, context=c.context, atol=c.inverse_tol, double=c.large
    ),
    "logdet_cancels": lambda c: check_fns.check_logdet_cancels(
        c.block, c.x, context=c.context, atol=c.inverse_logdet_tol
    ),
    "jacobian": lambda c: check_fns.check_jacobian_logdet(
        c.block, c.x, c.y, context=c.context, atol=c.logdet_atol, inverse_atol=c.inverse_logdet_tol,
        inverse_from_forward=c.large,
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
    "finite_differences": lambda c: check_fns.check_finite_differences(
        c.block, c.x, c.y, context=c.context, joint_parameters=c.large, inverse=not c.large
    ),
    "shape_errors": _shape_errors,
}

# stochastic log-det estimators: the mean against the exact log-det (a no-op for exact blocks)
RUNNERS["logdet_estimator"] = lambda c: check_fns.check_logdet_estimator(c.block, c.x, context=c.context)

#: every check, in the order they run (cheap and fundamental first).
ALL: tuple[str, ...] = tuple(RUNNERS)
#: the checks the large example runs (one sample: no batch-independence; the rest are size-independent).
LARGE_CHECKS: tuple[str, ...] = ("output_shape", "round_trip", "logdet_cancels", "jacobian", "finite_differences")


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
    regimes: Sequence[str] = REGIMES,
    odd_shapes: Sequence[Shape] | None = None,
    large_shapes: Sequence[Shape] | None = None,
    shrink: bool = True,
    derandomize: bool | None = None,
) -> None:
    """Check that a block honours the invertible-module contract on drawn configurations.

    Args:
        block: a registered block name (looked up in ``registries``, default
            :func:`~revkit.plugins.get_registries`) or a factory ``(input_shape, **params)``.
        shapes: per-sample shapes to try (a list or a hypothesis strategy); default: drawn from
            the block's ``supported_ranks`` by :func:`~revkit.testing.strategies.shapes_strategy`
            (odd sizes and 3 channels included).
        params: a parameter dict, a strategy of dicts, a function ``input_shape → dict or
            strategy`` (for parameters that depend on the shape, such as a reshape target), or
            ``None`` to draw them from the block's ``Params`` with
            :func:`~revkit.testing.strategies.params_strategy`.
        registries: where to look up a block name.
        max_examples: hypothesis examples (configurations) to try.
        atol: round-trip tolerance in float32, relative to ``max(1, |value|)``.
        logdet_atol: tolerance of float64 log-det comparisons, relative to ``max(1, |logdet|)``.
        inverse_atol: round-trip tolerance for blocks with ``analytic_inverse = False``.
        checks: names from :data:`ALL` to run.
        seed: seeds construction and the parameter noise (the fresh block uses ``seed + 1``).
        perturb: standard deviation of the noise added to every floating parameter.
        regimes: parameter regimes to draw from (:data:`REGIMES`).
        odd_shapes: per-sample shapes for the odd example (one example on a shape the block
            accepts among them); ``None``: :data:`ODD_SHAPES` of the block's ranks, odd element
            counts first, else 3 channels; ``[]``: none.
        large_shapes: per-sample shapes of over 1,000 elements for the large example, tried in
            order until the block accepts one; ``None``: :data:`LARGE_SHAPES` of the block's
            ranks; ``[]``: no large example (a block that refuses every large shape must say so).
        shrink: let hypothesis shrink a failing example to a minimal one (slower to fail).
        derandomize: draw the same examples on every run (default: yes, unless the environment
            variable ``REVKIT_KIT_EXPLORE`` is set to a non-empty value other than ``0``).

    Raises:
        AssertionError: a check failed (the message names block, shape, params, regime, seeds,
            check, error, and the :func:`check_case` call that reproduces it).
        KitError: an unknown block name or check, or parameters the kit cannot draw.
    """
    name, factory = _resolve(block, registries)
    selected = _select(checks)
    shape_st = _shapes(shapes, factory)
    params_for = _params(params, factory)
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown or not regimes:
        raise KitError(f"regimes must be a non-empty selection of {REGIMES}, got {tuple(regimes)}")
    tolerances = (atol, logdet_atol, inverse_atol)
    if derandomize is None:
        derandomize = os.environ.get(EXPLORE_ENV, "") in ("", "0")

    phases = tuple(Phase) if shrink else (Phase.explicit, Phase.reuse, Phase.generate)

    def example(data: st.DataObject, shape_strategy: st.SearchStrategy[Shape], large: bool) -> None:
        shape = tuple(data.draw(shape_strategy, label="shape"))
        params_st, validate = params_for(shape)
        kwargs = dict(data.draw(params_st, label="params"))
        input_seed = data.draw(st.integers(0, 2**31 - 1), label="input_seed")
        regime = data.draw(st.sampled_from(tuple(regimes)), label="regime")
        if validate:
            try:
                kwargs = _validated(factory, kwargs)
            except ValidationError:
                assume(False)
        wanted = tuple(c for c in selected if c in LARGE_CHECKS) if large else selected
        _run_case(name, factory, shape, kwargs, input_seed=input_seed, seed=seed, regime=regime, perturb=perturb,
                  tolerances=tolerances, checks=wanted, large=large, reject=assume, registered=isinstance(block, str))

    @settings(max_examples=max_examples, deadline=None, phases=phases, derandomize=derandomize, database=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        example(data, shape_st, large=False)

    run()

    # examples the kit insists on, whatever hypothesis drew: odd element counts / 3 channels, and large
    for tiers, wanted, large in ((_odd_shapes(odd_shapes, factory), selected, False),
                                 ([_large_shapes(large_shapes, factory)], LARGE_CHECKS, True)):
        if not any(c in wanted for c in selected):
            continue
        for tier in (t for t in tiers if t):
            try:
                _special_runner(example, tuple(tier), large, derandomize)()
            except Unsatisfiable as exc:
                if large:
                    raise AssertionError(
                        f"block {name!r}: the large example found no accepted per-sample shape among "
                        f"{list(tier)}; pass large_shapes= with one of over 1,000 elements it takes, or "
                        "large_shapes=[] to state that it takes none"
                    ) from exc
                continue  # the block takes none of this tier: try the next
            break


def _special_runner(
    example: Callable[[st.DataObject, st.SearchStrategy[Shape], bool], None],
    tier: tuple[Shape, ...],
    large: bool,
    derandomize: bool,
) -> Callable[[], None]:
    """A hypothesis test of one example on a shape of ``tier``, not shrunk (a smaller shape is not the point)."""

    @settings(max_examples=1, deadline=None, phases=(Phase.explicit, Phase.generate),
              derandomize=derandomize, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run_special(data: st.DataObject) -> None:
        example(data, st.sampled_from(tier), large)

    return run_special


def _odd_shapes(odd_shapes: Sequence[Shape] | None, factory: Factory) -> list[tuple[Shape, ...]]:
    if odd_shapes is not None:
        return [tuple(tuple(s) for s in odd_shapes)]
    ranks = sorted(set(getattr(factory, "supported_ranks", (1, 3))))
    tiers = [ODD_SHAPES.get(r, ()) for r in ranks]
    depth = max((len(t) for t in tiers), default=0)
    return [tuple(s for t in tiers if i < len(t) for s in t[i]) for i in range(depth)]


def check_case(
    block: str | Factory,
    shape: Shape,
    params: Mapping[str, Any] | None = None,
    *,
    input_seed: int = 0,
    seed: int = 0,
    regime: str = "near",
    perturb: float = 0.05,
    checks: Iterable[str] = ALL,
    large: bool = False,
    registries: Registries | None = None,
    atol: float = 1e-5,
    logdet_atol: float = 1e-6,
    inverse_atol: float = 1e-4,
) -> None:
    """Run checks on one configuration, without hypothesis: what a ``check_block`` failure
    message tells you to call to reproduce it (same block, shape, parameters, seeds and regime)."""
    name, factory = _resolve(block, registries)
    selected = _select(checks)

    def refuse(condition: bool) -> None:
        if not condition:
            raise AssertionError(f"block {name!r} refuses per-sample shape {tuple(shape)} with params {params}")

    _run_case(name, factory, tuple(shape), dict(params or {}), input_seed=input_seed, seed=seed, regime=regime,
              perturb=perturb, tolerances=(atol, logdet_atol, inverse_atol), checks=selected, large=large,
              reject=refuse, registered=isinstance(block, str))


def _run_case(
    name: str,
    factory: Factory,
    shape: Shape,
    kwargs: dict[str, Any],
    *,
    input_seed: int,
    seed: int,
    regime: str,
    perturb: float,
    tolerances: tuple[float, float, float],
    checks: Sequence[str],
    large: bool,
    reject: Callable[[bool], None],
    registered: bool,
) -> None:
    case = _build(factory, shape, kwargs, input_seed, seed, perturb, tolerances, regime, large, reject)
    for check in checks:
        try:
            RUNNERS[check](case)
        except Exception as exc:
            what = str(exc) if isinstance(exc, AssertionError) else f"raised {type(exc).__name__}: {exc}"
            block_arg = repr(name) if registered else f"<{name}>"
            reproduce = (
                f"revkit.testing.check_case({block_arg}, {shape}, {kwargs}, input_seed={input_seed}, seed={seed}, "
                f"regime={regime!r}, perturb={perturb}, checks=[{check!r}]{', large=True' if large else ''})"
            )
            raise AssertionError(
                f"block {name!r}, per-sample shape {shape}, params {kwargs}, regime {regime!r}, "
                f"input_seed {input_seed}, seed {seed}: check {check!r} failed: {what}\n"
                f"reproduce with {reproduce}"
            ) from exc


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


def _large_shapes(large_shapes: Sequence[Shape] | None, factory: Factory) -> list[Shape]:
    if large_shapes is not None:
        return [tuple(s) for s in large_shapes]
    ranks = getattr(factory, "supported_ranks", (1, 3))
    return [shape for rank in sorted(set(ranks)) for shape in LARGE_SHAPES.get(rank, ())]


def _build(
    factory: Factory,
    shape: Shape,
    kwargs: dict[str, Any],
    input_seed: int,
    seed: int,
    perturb: float,
    tolerances: tuple[float, float, float],
    regime: str = "near",
    large: bool = False,
    reject: Callable[[bool], None] = assume,
) -> Case:
    try:
        block = _construct(factory, shape, kwargs, seed)
    except ShapeError:
        reject(False)
        raise  # unreachable: reject raises
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
    if regime == "trained" and not large:
        train_parameters(block, shape, seed=input_seed, context_size=CONTEXT_SIZE if conditional else 0)
    # the large example: noise shrunk with the sample size, so a D×D map stays as well conditioned
    # as the small examples' (i.i.d. noise of 0.05 on a 1,000 × 1,000 triangular factor is not)
    perturb_parameters(block, perturb * min(1.0, (64 / numel(shape)) ** 0.5) if large else perturb, seed)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # running estimates settle, as in training
        torch.manual_seed(seed)
        for _ in range(SETTLE_PASSES):
            block(warmup, context(INIT_BATCH))
    block.eval()
    batch = 1 if large else BATCH
    x = draw_inputs(shape, batch, gen, domain)
    ctx = context(batch)
    if domain is None:  # the real output shape: a wrong output_shape is its own check's finding
        with torch.no_grad():
            out_shape = tuple(block(x, ctx)[0].shape[1:])
        y = torch.randn((batch, *out_shape), generator=gen)
    else:
        y = check_fns.default_latent(block, draw_inputs(shape, batch, gen, domain), ctx)
    return Case(block, fresh, x, y, ctx, *tolerances, factory=factory, shape=shape, large=large, kwargs=kwargs)


def train_parameters(
    block: Invertible,
    shape: Shape,
    *,
    steps: int = TRAIN_STEPS,
    lr: float = TRAIN_LR,
    batch: int = TRAIN_BATCH,
    seed: int = 0,
    context_size: int = 0,
) -> None:
    r"""Move ``block``'s parameters to the scale training reaches: ``steps`` Adam steps (in place,
    train mode) minimising the standard-normal negative log-likelihood
    :math:`\tfrac12\sum y^2 - \log|\det J|` of data :math:`x = μ + e^{ρ} ⊙ ε` with per-entry
    :math:`μ \sim N(0, 1)`, :math:`ρ \sim N(0, 1/4)` and :math:`ε` a fresh standard-normal batch each step
    (for a block with an ``input_domain``: uniform batches inside it). Steps whose loss is not
    finite are skipped. The block is left in train mode; seeded, so it is reproducible.
    """
    gen = torch.Generator().manual_seed(seed)
    domain = getattr(block, "input_domain", None)
    params = [p for p in block.parameters() if p.requires_grad and p.is_floating_point()]
    if not params:
        return
    mu = torch.randn(shape, generator=gen)
    rho = 0.5 * torch.randn(shape, generator=gen)
    optimizer = torch.optim.Adam(params, lr=lr)
    block.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            if domain is None:
                x = mu + rho.exp() * torch.randn((batch, *shape), generator=gen)
            else:
                x = draw_inputs(shape, batch, gen, domain)
            ctx = torch.randn(batch, context_size, generator=gen) if context_size else None
            y, logdet = block(x, ctx)
            loss = 0.5 * y.pow(2).flatten(1).sum(1).mean() - logdet.mean()
            optimizer.zero_grad(set_to_none=True)
            if not bool(torch.isfinite(loss)) or not loss.requires_grad:
                continue
            loss.backward()
            optimizer.step()
    for p in params:
        p.grad = None
    block.penalty = None


def perturb_parameters(block: torch.nn.Module, std: float, seed: int = 0) -> None:
    r"""Add Gaussian noise to every floating parameter, in place, from a seeded generator.

    Vectors and scalars get :math:`N(0, \mathrm{std}^2)`; a weight of two or more dimensions with
    fan-in :math:`n` (entries per output row) gets :math:`N(0, \mathrm{std}^2 \min(1, 16/n))`, so the
    noise's operator norm stays of order ``std`` instead of growing like :math:`\sqrt n` (a
    1,000 × 1,000 matrix with noise 0.05 per entry is nearly singular)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            if p.is_floating_point():
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                fan_in = p[0].numel() if p.dim() >= 2 else 1
                p.add_(noise.to(device=p.device, dtype=p.dtype), alpha=std * min(1.0, (16 / fan_in) ** 0.5))


__all__ = ["ALL", "LARGE_CHECKS", "LARGE_SHAPES", "ODD_SHAPES", "REGIMES", "RUNNERS", "Case", "check_block", "check_case",
           "perturb_parameters", "train_parameters"]

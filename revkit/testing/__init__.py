"""The conformance kit: check that an invertible block honours the revkit contract.

Plugin authors call :func:`check_block` from their own tests; each check is also a public
function taking a constructed block and an input batch (``check_round_trip``,
``check_jacobian_logdet``, …). Needs ``hypothesis`` (``pip install revkit[dev]``).
"""

from revkit.testing.checks import (
    check_batch_independence,
    check_finite_differences,
    check_gradients,
    check_jacobian_logdet,
    check_logdet_cancels,
    check_logdet_estimator,
    check_memory_saving,
    check_output_shape,
    check_round_trip,
    check_state_dict,
    check_train_eval,
    check_volume_preserving,
    default_latent,
    exact_mode,
)
from revkit.testing.conformance import (
    ALL,
    LARGE_CHECKS,
    LARGE_SHAPES,
    REGIMES,
    check_block,
    check_case,
    perturb_parameters,
    train_parameters,
)
from revkit.testing.jacobian import brute_force_logdet
from revkit.testing.strategies import (
    KitError,
    draw_inputs,
    params_strategy,
    shapes_strategy,
)

__all__ = [
    "ALL",
    "KitError",
    "LARGE_CHECKS",
    "LARGE_SHAPES",
    "REGIMES",
    "brute_force_logdet",
    "check_batch_independence",
    "check_block",
    "check_case",
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
    "draw_inputs",
    "exact_mode",
    "params_strategy",
    "perturb_parameters",
    "shapes_strategy",
    "train_parameters",
]

"""The spec: one TOML file describing the network, prior, objective, data, training and output.

>>> spec = load_spec("specs/toy2d_realnvp.toml", overrides=["train.steps=10"])  # doctest: +SKIP
>>> spec.model.layers[0].block                                                  # doctest: +SKIP
'affine_coupling'

Every problem is a :class:`~revkit.errors.SpecError` naming its TOML path
(``model.layers[3].hidden``), what was wrong and what is allowed.
"""

from revkit.spec.dump import dumps
from revkit.spec.load import load_spec, load_spec_dict, read_toml
from revkit.spec.models import (
    ComponentSpec,
    DataSpec,
    EvalSpec,
    LayerSpec,
    ModelSpec,
    ObjectiveSpec,
    OutputSpec,
    PriorSpec,
    Spec,
    TrainSpec,
)
from revkit.spec.overrides import apply_overrides, parse_override
from revkit.spec.schema import spec_json_schema

__all__ = [
    "ComponentSpec",
    "DataSpec",
    "EvalSpec",
    "LayerSpec",
    "ModelSpec",
    "ObjectiveSpec",
    "OutputSpec",
    "PriorSpec",
    "Spec",
    "TrainSpec",
    "apply_overrides",
    "dumps",
    "load_spec",
    "load_spec_dict",
    "parse_override",
    "read_toml",
    "spec_json_schema",
]

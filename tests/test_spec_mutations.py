"""Validation of any spec document ends in a Spec or a SpecError — never in another exception.

Hypothesis mutates the valid bundled specs (and the corpus's good specs): it drops keys, puts values
of the wrong TOML type in, adds unknown keys and nested junk, renames keys by a letter, empties or
duplicates layers. Whatever comes out, ``load_spec_dict`` either accepts it or raises
:class:`~revkit.errors.SpecError` with a TOML path that starts at a key of the document or a spec
section, and a one-line message; a spec that validates then builds or raises a
:class:`~revkit.errors.RevkitError`. Random ``--set`` overrides get the same guarantee.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from revkit.build import build
from revkit.errors import RevkitError, SpecError
from revkit.plugins import get_registries
from revkit.spec import Spec, load_spec_dict
from revkit.spec.errors import format_path
from revkit.spec.overrides import apply_overrides

ROOT = Path(__file__).parents[1]
#: valid specs to mutate: the bundled ones that need no third-party plugin, and the corpus's.
SEEDS = [p for p in sorted((ROOT / "revkit" / "specs").glob("*.toml")) if "splines" not in p.name] + [
    ROOT / "tests" / "bad_inputs" / "good_toy.toml", ROOT / "tests" / "bad_inputs" / "good_mnist.toml"]
DOCS = {p.name: tomllib.loads(p.read_text(encoding="utf-8")) for p in SEEDS}

EXAMPLES = 400
BUILD_EXAMPLES = 100
OVERRIDE_EXAMPLES = 200

# values of every TOML type, including ones no spec field takes (nan, inf, huge and negative numbers)
words = st.sampled_from(["model", "layers", "block", "kind", "hidden", "repeat", "steps", "lr", "data", "train",
                         "affine_coupling", "squeeze", "class_gaussian", "mnist", "toy2d", "cpu", "cosine",
                         "samples", "", "0", "-1", "1e-3", "true", "a\nb", "x\u2028y", 'q"\\']) | st.text(max_size=8)
scalars = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 70)
           | st.floats(allow_nan=True, allow_infinity=True) | words)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
                    max_leaves=12)


def wrong_type(value: Any) -> st.SearchStrategy[Any]:
    """Values of another TOML type than ``value``'s."""
    others = []
    if not isinstance(value, bool):
        others.append(st.booleans())
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        others.append(st.integers(-5, 100) | st.floats(allow_nan=True, allow_infinity=True))
    if not isinstance(value, str):
        others.append(words)
    if not isinstance(value, list):
        others.append(st.lists(scalars, max_size=3))
    if not isinstance(value, dict):
        others.append(st.dictionaries(words, scalars, max_size=2))
    return st.one_of(others)


def containers(node: Any, out: list[Any]) -> list[Any]:
    """Every table and array in ``node`` (itself included), depth first."""
    if isinstance(node, (dict, list)):
        out.append(node)
        for child in (node.values() if isinstance(node, dict) else node):
            containers(child, out)
    return out


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(DOCS[draw(st.sampled_from(sorted(DOCS)))])
    for _ in range(draw(st.integers(1, 4))):
        node = draw(st.sampled_from(containers(doc, [])))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        op = draw(st.sampled_from(["drop", "wrong_type", "junk", "new_key", "rename", "duplicate", "empty"]))
        if op == "new_key" and isinstance(node, dict):
            node[draw(words)] = draw(junk)
            continue
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        if op == "drop":
            del node[key]
        elif op == "wrong_type":
            node[key] = draw(wrong_type(node[key]))
        elif op == "junk":
            node[key] = draw(junk)
        elif op == "rename" and isinstance(node, dict) and isinstance(key, str) and key:
            cut = draw(st.integers(0, len(key) - 1))
            node[key[:cut] + key[cut + 1:]] = node.pop(key)  # a letter missing: 'hiden'
        elif op == "duplicate" and isinstance(node, list):
            node.append(copy.deepcopy(node[key]))
        elif op == "empty":
            node[key] = {} if isinstance(node[key], dict) else [] if isinstance(node[key], list) else node[key]
    return doc


def check_outcome(doc: Any) -> str:
    """Validate ``doc``: a Spec, or a well-formed SpecError; anything else fails the test."""
    try:
        spec = load_spec_dict(doc)
    except SpecError as err:
        assert err.message and len(str(err).splitlines()) == 1, str(err)
        tops = [format_path((str(k),)) for k in (doc if isinstance(doc, dict) else {})] + list(Spec.model_fields)
        assert err.path == "" or any(err.path == t or err.path.startswith((t + ".", t + "[")) for t in tops), \
            f"path {err.path!r} is not in the document: {err}"
        return "error"
    assert isinstance(spec, Spec)
    for value in (spec.train.lr, spec.train.gamma, spec.eval.temperature):
        assert math.isfinite(value)
    return "ok"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_valid_spec_validates_or_raises_spec_error(doc: dict[str, Any]) -> None:
    event(f"outcome: {check_outcome(doc)}")  # pytest --hypothesis-show-statistics counts them


@settings(max_examples=BUILD_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_spec_that_validates_builds_or_raises_a_revkit_error(doc: dict[str, Any]) -> None:
    """What ``revkit validate`` does after validation — build the flow, prior and objective —
    ends in a model or a user error too (a shape that does not fit, a prior without labels, …)."""
    try:
        spec = load_spec_dict(doc)
    except SpecError:
        event("outcome: spec error")
        return
    try:
        build(spec)
    except RevkitError as err:
        assert "\n" not in str(err)
        event("outcome: build error")
        return
    event("outcome: built")


@pytest.mark.parametrize("name", sorted(DOCS))
def test_the_seeds_are_valid(name: str) -> None:
    assert check_outcome(copy.deepcopy(DOCS[name])) == "ok"


REAL_PATHS = ["train.steps", "train.lr", "train.device", "train.betas", "model.layers[0].hidden",
              "model.layers[0].repeat", "model.layers[1].block", "model.input_shape", "data.batch_size", "data.kind",
              "data.pad", "prior.kind", "eval.samples", "eval.pictures", "output.name"]
override_paths = st.sampled_from(REAL_PATHS) | st.lists(
    words | st.sampled_from(["model.layers[0]", "layers[9]", "train", "data.root"]), min_size=1, max_size=4
).map(".".join)
override_values = words | st.sampled_from(["[1, 2", "{a = 1}", "nan", "-inf", "1979-05-27", "[[]]", "\"x"])


@settings(max_examples=OVERRIDE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(DOCS)), st.lists(st.tuples(override_paths, override_values) | words, max_size=3))
def test_random_overrides_apply_and_validate_or_raise_spec_error(name: str, overrides: list[Any]) -> None:
    texts = [f"{o[0]}={o[1]}" if isinstance(o, tuple) else o for o in overrides]
    try:
        doc = apply_overrides(DOCS[name], texts, get_registries())
    except SpecError as err:
        assert err.message and "--set" in err.message and len(str(err).splitlines()) == 1, str(err)
        event("outcome: override refused")
        return
    event(f"outcome: {check_outcome(doc)}")

"""revkit with and without the third-party plugin ``revkit-splines`` (plugins/revkit-splines).

Without it, a spec naming ``rq_spline_coupling`` fails validation with an error that names the block,
the installed blocks and the distribution that provides it (revkit registers that hint). With it, the
shipped spline specs validate and build, and ``revkit plugins`` reports the plugin. Tests that need the
plugin installed (``pip install -e plugins/revkit-splines``; CI does) are skipped without it.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from revkit.build import build
from revkit.cli import main
from revkit.errors import SpecError
from revkit.plugins import load_registries
from revkit.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
SPLINE_SPECS = [REPO / "specs" / "toy2d_splines.toml", REPO / "specs" / "mnist_splines.toml"]
AUTOREGRESSIVE_SPEC = REPO / "specs" / "toy2d_splines_autoregressive.toml"
#: every shipped spec that needs the plugin, and the block it names
PLUGIN_SPECS = {**{p: "rq_spline_coupling" for p in SPLINE_SPECS}, AUTOREGRESSIVE_SPEC: "rq_spline_autoregressive"}
NEEDS_PLUGIN = "needs the plugin: pip install -e plugins/revkit-splines"


def _plugin_installed() -> bool:
    try:
        import revkit_splines  # noqa: F401
    except ImportError:
        return False
    return True


requires_plugin = pytest.mark.skipif(not _plugin_installed(), reason=NEEDS_PLUGIN)


@pytest.mark.parametrize("path", list(PLUGIN_SPECS), ids=[p.name for p in PLUGIN_SPECS])
def test_without_the_plugin_validation_names_the_block_and_its_distribution(path: Path) -> None:
    without = load_registries(entry_points=False)
    with pytest.raises(SpecError) as info:
        load_spec(path, registries=without)
    message = str(info.value)
    assert info.value.path.startswith("model.layers[") and info.value.path.endswith("].block")
    assert f"block '{PLUGIN_SPECS[path]}' is not installed" in message
    assert "'affine_coupling'" in message  # the installed blocks are listed
    assert "provided by the plugin distribution 'revkit-splines'" in message


def test_revkit_validate_without_plugins_prints_the_hint_and_exits_2() -> None:
    env = {**os.environ, "REVKIT_LOAD_PLUGINS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "revkit", "validate", str(SPLINE_SPECS[0])],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "rq_spline_coupling" in line and "pip install revkit-splines" in line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["rq_spline_coupling", "rq_spline_autoregressive"])
def test_revkit_registers_the_hint_for_the_spline_blocks(name: str) -> None:
    assert load_registries(entry_points=False).block_hints[name] == "revkit-splines"


@requires_plugin
@pytest.mark.parametrize("path", SPLINE_SPECS, ids=[p.name for p in SPLINE_SPECS])
def test_with_the_plugin_the_spline_specs_validate_and_build(path: Path) -> None:
    from revkit_splines import RQSplineCoupling

    spec = load_spec(path)
    flow = build(spec).model
    couplings = [m for m in flow.modules() if isinstance(m, RQSplineCoupling)]
    assert couplings and flow.latent_shape == flow.prior.shape
    assert {c.flip for c in couplings} == {False, True}  # both halves get transformed


@requires_plugin
def test_revkit_plugins_shows_the_spline_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    from revkit_splines import __version__

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index(f"splines {__version__}")
    assert out[at + 1].strip() == "blocks: rq_spline_autoregressive, rq_spline_coupling"
    assert main(["plugins", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"name": "splines", "version": __version__, "builtin": False,
            "registered": {"blocks": ["rq_spline_autoregressive", "rq_spline_coupling"]}} in doc["plugins"]


@requires_plugin
@pytest.mark.slow
@pytest.mark.parametrize("path", [SPLINE_SPECS[0], AUTOREGRESSIVE_SPEC], ids=["coupling", "autoregressive"])
def test_the_toy_spline_specs_train_briefly_and_write_their_density_plots(tmp_path: Path, path: Path) -> None:
    out = tmp_path / "run"
    code = main(["run", str(path), "--out", str(out), "--set", "train.steps=30",
                 "--set", "train.log_every=10", "--set", "eval.samples=200"])
    assert code == 0
    assert (out / "density.png").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["max_reconstruction_error"] < 1e-4


# -- CONTRIBUTING.md quotes the example plugin's files as they are ------------------------------
PLUGIN = REPO / "plugins" / "revkit-splines"


def _fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (REPO / "CONTRIBUTING.md").read_text(), flags=re.S)


def test_contributing_quotes_the_plugins_pyproject_verbatim() -> None:
    quoted = [b for b in _fenced("toml") if 'name = "revkit-splines"' in b]
    assert quoted == [(PLUGIN / "pyproject.toml").read_text()]


def test_contributing_quotes_the_plugins_hook_module_verbatim() -> None:
    hook = (PLUGIN / "src" / "revkit_splines" / "plugin.py").read_text()
    assert hook in _fenced("python")


def test_contributing_quotes_a_conformance_call_from_the_plugins_tests() -> None:
    (quoted,) = [b for b in _fenced("python") if b.startswith('check_block(\n    "rq_spline_coupling"')]
    tests = (PLUGIN / "tests" / "test_spline_conformance.py").read_text()
    indented = "".join(f"    {line}" if line.strip() else line for line in quoted.splitlines(keepends=True))
    assert indented in tests

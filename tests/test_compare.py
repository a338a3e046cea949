"""``revkit compare``: a table of VAE runs from their spec.toml and metrics.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from revkit.cli import main
from revkit.eval.compare import HEADERS
from revkit.spec import load_spec_dict


def fake_run(root: Path, name: str, flow: list[dict], metrics: dict, iwae_samples: int | None = 1000) -> Path:
    """A run folder as `revkit run` leaves it: the validated spec as TOML and the final metrics."""
    objective = {"kind": "elbo", **({"iwae_samples": iwae_samples} if iwae_samples else {})}
    spec = load_spec_dict({"model": {"kind": "vae", "vae": {"posterior_flow": flow}}, "objective": objective,
                           "data": {"kind": "binarized_mnist"}})
    folder = root / name
    folder.mkdir()
    (folder / "spec.toml").write_text(spec.to_toml())
    (folder / "metrics.json").write_text(json.dumps({"main_metric": "test_nll_iwae", "steps": 8000, **metrics}))
    return folder


def three_runs(tmp_path: Path) -> list[Path]:
    return [
        fake_run(tmp_path, "plain", [], {"test_elbo": -99.512, "test_recon_nll": 70.1, "test_nll_iwae": 94.25},
                 iwae_samples=None),
        fake_run(tmp_path, "planar", [{"block": "planar", "repeat": 4}],
                 {"test_elbo": -98.0, "test_recon_nll": 69.0, "test_nll_iwae": 93.5}),
        fake_run(tmp_path, "realnvp", [{"block": "affine_coupling", "repeat": 2}, {"block": "permute"},
                                       {"block": "affine_coupling", "repeat": 3}],
                 {"test_elbo": -97.25, "test_recon_nll": 68.5, "test_nll_iwae": 92.875}),
    ]


def test_text_table_has_a_row_per_run_with_model_k_and_the_three_numbers(tmp_path, capsys):
    runs = three_runs(tmp_path)
    assert main(["compare", *map(str, runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "model", "K", "ELBO", "−log", "p(x|z)", "IWAE", "−log", "p(x)", "L", "steps"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["plain", "VAE", "0", "-99.51", "70.10", "94.25", "500", "8000"]  # default L
    assert lines[3].split() == ["planar", "VAE", "+", "planar", "4", "-98.00", "69.00", "93.50", "1000", "8000"]
    assert lines[4].split() == ["realnvp", "VAE", "+", "Real", "NVP", "5", "-97.25", "68.50", "92.88", "1000", "8000"]
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_markdown_table(tmp_path, capsys):
    runs = three_runs(tmp_path)
    assert main(["compare", "--markdown", *map(str, runs[1:])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == r"| run | model | K | ELBO | −log p(x\|z) | IWAE −log p(x) | L | steps |"
    assert out[1] == "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    assert out[2] == "| planar | VAE + planar | 4 | -98.00 | 69.00 | 93.50 | 1000 | 8000 |"
    assert len(out) == 4
    # every line has one cell per column: no unescaped "|" inside a cell
    assert {len(re.split(r"(?<!\\)\|", line)) for line in out} == {len(HEADERS) + 2}


def test_unfinished_or_non_vae_runs_are_one_line_errors(tmp_path, capsys):
    unfinished = fake_run(tmp_path, "unfinished", [], {})
    (unfinished / "metrics.json").unlink()
    assert main(["compare", str(unfinished)]) == 2
    assert "unfinished: no metrics.json" in capsys.readouterr().err
    flow = tmp_path / "flow"
    flow.mkdir()
    spec = load_spec_dict({"model": {"layers": [{"block": "permute"}]}, "data": {"kind": "toy2d"}})
    (flow / "spec.toml").write_text(spec.to_toml())
    assert main(["compare", str(flow)]) == 2
    assert "not a VAE run" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["test_nll_iwae", "test_elbo"])
def test_metrics_without_the_bounds_are_named(tmp_path, capsys, missing):
    metrics = {"test_elbo": -1.0, "test_recon_nll": 1.0, "test_nll_iwae": 1.0}
    del metrics[missing]
    run = fake_run(tmp_path, "run", [], metrics)
    assert main(["compare", str(run)]) == 2
    assert missing in capsys.readouterr().err

"""``revkit compare``: one table of finished runs of any model kind, from spec.toml and metrics.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from revkit.cli import main
from revkit.spec import load_spec_dict


def fake_run(root: Path, name: str, doc: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """A run folder as `revkit run` leaves it: the validated spec as TOML and the final metrics."""
    spec = load_spec_dict(doc)
    folder = root / name
    folder.mkdir()
    (folder / "spec.toml").write_text(spec.to_toml())
    (folder / "metrics.json").write_text(json.dumps({"steps": 50, "train_seconds": 9.4, "device": "cpu",
                                                     "pictures": ["samples.png"], **metrics}))
    return folder


GLOW = {"model": {"layers": [{"block": "squeeze"}, {"block": "glow_step", "repeat": 4, "hidden": 8},
                             {"block": "glow_step", "hidden": 8}]},
        "data": {"kind": "mnist"}}
OT = {"model": {"input_shape": [1, 32, 32], "layers": [{"block": "subsample"}, {"block": "revblock", "repeat": 2},
                                                       {"block": "flatten"}]},
      "prior": {"kind": "class_gaussian"}, "objective": {"kind": "optimal_transport"},
      "data": {"kind": "mnist", "pad": 2}}
VAE = {"model": {"kind": "vae", "vae": {"posterior_flow": [{"block": "planar", "repeat": 4}]}},
       "objective": {"kind": "elbo"}, "data": {"kind": "binarized_mnist"}}


def three_runs(tmp_path: Path) -> list[Path]:
    return [
        fake_run(tmp_path, "glow", GLOW, {"main_metric": "test_bits_per_dim", "test_bits_per_dim": 1.23456,
                                          "max_reconstruction_error": 4.7e-7}),
        fake_run(tmp_path, "ot", OT, {"main_metric": "test_ot_cost", "test_ot_cost": 7.1015,
                                      "test_restricted_l1": 0.00027, "fid_mnist_classifier": 240.5}),
        fake_run(tmp_path, "vae", VAE, {"main_metric": "test_nll_iwae", "test_elbo": -99.512, "test_nll_iwae": 94.25}),
    ]


def test_one_text_table_for_a_flow_an_ot_run_and_a_vae(tmp_path, capsys):
    assert main(["compare", *map(str, three_runs(tmp_path))]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = re.split(r"\s{2,}", lines[0])
    assert header == ["run", "model", "objective", "test_bits_per_dim", "test_ot_cost", "test_restricted_l1",
                      "test_elbo", "test_nll_iwae", "max_reconstruction_error", "fid_mnist_classifier", "steps",
                      "train s"]
    assert set(lines[1]) <= {"-", " "}
    glow, ot, vae = (re.split(r"\s{2,}", line) for line in lines[2:5])
    assert glow == ["glow", "flow: squeeze → 5×glow_step", "max_likelihood", "1.2346*", "—", "—", "—", "—",
                    "4.7e-07", "—", "50", "9"]
    assert ot[:3] == ["ot", "flow: subsample → 2×revblock → flatten", "optimal_transport"]
    assert ot[4] == "7.1015*" and ot[5] == "0.00027" and ot[9] == "240.50"
    assert vae[:3] == ["vae", "vae: posterior_flow 4×planar", "elbo"]
    assert vae[6:8] == ["-99.51", "94.25*"]
    assert lines[5] == "* the run's main metric"
    assert len({len(line) for line in lines[:5]}) <= 2  # aligned columns (the header may end shorter)


def test_markdown_table_escapes_bars_and_has_one_cell_per_column(tmp_path, capsys):
    runs = three_runs(tmp_path)
    odd = fake_run(tmp_path, "a|b", GLOW, {"main_metric": "test_bits_per_dim", "test_bits_per_dim": 2.0})
    assert main(["compare", "--markdown", str(runs[2]), str(odd)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| run | model | objective | test_elbo | test_nll_iwae | test_bits_per_dim | steps | train s |"
    assert out[1] == "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
    assert out[3].startswith(r"| a\|b | flow: squeeze → 5×glow_step | max_likelihood | — | — | 2.0000* |")
    cells = {len(re.split(r"(?<!\\)\|", line)) for line in out[:4]}
    assert cells == {8 + 2}


def test_unfinished_and_non_run_folders_are_one_line_errors(tmp_path, capsys):
    unfinished = fake_run(tmp_path, "unfinished", GLOW, {})
    (unfinished / "metrics.json").unlink()
    assert main(["compare", str(unfinished)]) == 2
    assert "unfinished: no metrics.json" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["compare", str(empty)]) == 2
    assert "empty: no spec.toml" in capsys.readouterr().err
    broken = fake_run(tmp_path, "broken", GLOW, {})
    (broken / "metrics.json").write_text("[1, 2]")
    assert main(["compare", str(broken)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err

"""``report.html`` of a run and ``revkit report`` comparing a Glow-like flow with a VAE: self-contained pages,
opened in headless Chromium (no console errors, every image loads, a screenshot that is not blank)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from browser import check_page, find_chromium
from mnist_paths import needs_mnist

from revkit.cli import main
from revkit.runs import run_spec
from revkit.spec import load_spec_dict

TINY_TRAIN = {"steps": 3, "log_every": 1, "checkpoint_every": 0, "device": "cpu"}
GLOW: dict[str, Any] = {
    "model": {"input_shape": [1, 28, 28], "layers": [
        {"block": "logit", "alpha": 0.05}, {"block": "squeeze"},
        {"block": "glow_step", "hidden": 8, "repeat": 2}, {"block": "split"}, {"block": "squeeze"},
        {"block": "glow_step", "hidden": 8}]},
    "objective": {"kind": "max_likelihood", "dequantize": "uniform"},
    "data": {"kind": "mnist", "batch_size": 16, "test_batch_size": 50},
    "train": TINY_TRAIN,
    "eval": {"samples": 16, "reconstructions": 4, "test_batches": 1},
}
VAE: dict[str, Any] = {
    "model": {"kind": "vae", "vae": {"latent": 4, "channels": 4, "hidden": 16}},
    "objective": {"kind": "elbo", "iwae_samples": 4},
    "data": {"kind": "binarized_mnist", "batch_size": 16, "test_batch_size": 50},
    "train": TINY_TRAIN,
    "eval": {"samples": 16, "reconstructions": 4, "test_batches": 1},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for name, spec in (("glow", GLOW), ("vae", VAE)):
        run_spec(load_spec_dict(spec), Path(f"{name}.toml"), out=base / name, progress_stream=io.StringIO(),
                 say=lambda _: None)
        out[name] = base / name
    return out


pytestmark = needs_mnist


def images_in(page: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)


def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(?!data:)', page), "a page refers to something outside itself"
    assert all(src.startswith("data:image/png;base64,") for src in images_in(page))


def test_every_run_folder_has_a_self_contained_report(runs: dict[str, Path]) -> None:
    glow = (runs["glow"] / "report.html").read_text(encoding="utf-8")
    vae = (runs["vae"] / "report.html").read_text(encoding="utf-8")
    for page in (glow, vae):
        assert_self_contained(page)
        assert "Training curves" in page and "[model]" in page and "reconstructions" in page
    assert len(images_in(glow)) >= 3  # curves, samples, reconstructions
    assert "test_bits_per_dim" in glow
    assert "bounds on the log-likelihood" in vae and "test_nll_iwae" in vae


def test_revkit_report_compares_runs_of_different_kinds(runs: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "compare.html"
    assert main(["report", str(runs["glow"]), str(runs["vae"]), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert "2 runs compared" in page and "<th>glow</th>" in page and "<th>vae</th>" in page
    assert "test_bits_per_dim" in page and "test_nll_iwae" in page  # metrics side by side
    assert len(images_in(page)) >= 5  # overlaid curves + samples and reconstructions of both


def test_revkit_report_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "has no spec.toml" in capsys.readouterr().err


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_pages_load_in_headless_chromium(runs: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    compare = tmp_path / "compare.html"
    assert main(["report", str(runs["glow"]), str(runs["vae"]), "-o", str(compare)]) == 0
    for page in (runs["glow"] / "report.html", runs["vae"] / "report.html", compare):
        seen = check_page(page, find_chromium() or "")
        assert seen.errors == [], page
        assert seen.images and all(complete and width > 0 for complete, width in seen.images), page
        assert len(seen.images) == len(images_in(page.read_text(encoding="utf-8")))
        shot = Image.open(io.BytesIO(seen.screenshot)).convert("L")
        low, high = shot.getextrema()
        dark = sum(shot.histogram()[:200]) / (shot.width * shot.height)
        assert high - low > 100 and dark > 0.01, f"{page}: the screenshot looks blank"

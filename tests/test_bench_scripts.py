"""The benchmarks under bench/ run end to end and print their tables (tiny sizes; no timing claims)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mnist_paths import DATA_ROOT, needs_mnist

REPO = Path(__file__).resolve().parents[1]


def run_bench_process(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "REVKIT_DATA": str(DATA_ROOT)}
    return subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def run_bench(script: str, *args: str) -> str:
    done = run_bench_process(script, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_memory_bench_prints_peaks_and_time_ratios_per_depth() -> None:
    out = run_bench("memory.py", "--depths", "2", "--modes", "plain", "memory_saving", "--shape", "1", "8", "8",
                    "--hidden", "4", "--batch", "2", "--repeats", "1", "--threads", "1")
    assert "memory_saving time ÷ plain" in out
    assert "plain: peak at depth 2 ÷ depth 2" in out and "memory_saving: peak at depth 2 ÷ depth 2" in out


def test_throughput_bench_counts_flops_of_a_shipped_spec() -> None:
    out = run_bench("throughput.py", "--specs", "toy2d_realnvp", "--batches", "8", "--repeats", "1")
    rows = [line for line in out.splitlines() if line.startswith("toy2d_realnvp")]
    assert len(rows) == 2 and "memory_saving" in rows[1]
    assert "matmul peak" in out


def test_peers_bench_lists_revkit_and_names_missing_libraries() -> None:
    out = run_bench("peers.py", "--couplings", "2", "--hidden", "4", "--batch", "4", "--repeats", "1")
    assert out.count("revkit (memory saving)") == 2
    for library in ("FrEIA", "nflows", "zuko"):
        assert library in out  # a row, or "not measured: … (… not installed)"


def test_compile_bench_times_eager_and_compiled_steps() -> None:
    # the eager backend traces without generating code: checks the script, measures nothing
    out = run_bench("compile.py", "--specs", "toy2d_realnvp", "--batches", "8", "--repeats", "1", "--backend", "eager")
    rows = [line for line in out.splitlines() if line.startswith("toy2d_realnvp")]
    assert len(rows) == 1 and "speed-up (eager ÷ compiled)" in out


@needs_mnist
def test_hybrid_bench_prints_accuracy_and_bits_per_dim_per_weight(tmp_path: Path) -> None:
    out = run_bench("iresnet_hybrid.py", "--steps", "2", "--small", "--weights", "0", "0.5", "--out", str(tmp_path))
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:] if line.strip()}
    assert set(rows) == {"0", "0.5"} and "test bits/dim" in out and "train s" in out
    assert rows["0"][2] == "—"  # λ = 0: a plain classifier, no bits/dim
    assert 0 <= float(rows["0.5"][1]) <= 1 and float(rows["0.5"][2]) > 0
    assert (tmp_path / "nll_weight-0.5" / "metrics.json").is_file()
    # --reuse reads a folder of the same spec and trains again where the spec differs
    again = run_bench("iresnet_hybrid.py", "--steps", "2", "--small", "--weights", "0.5", "--out", str(tmp_path),
                      "--reuse", "--markdown")
    assert f"reusing {tmp_path / 'nll_weight-0.5'}" in again and rows["0.5"][1] in again
    changed = run_bench_process("iresnet_hybrid.py", "--steps", "3", "--small", "--weights", "0", "--out",
                                str(tmp_path), "--reuse")
    assert changed.returncode != 0 and "holds a run of another spec" in changed.stderr
    assert json.loads((tmp_path / "nll_weight-0" / "metrics.json").read_text())["steps"] == 2  # left as it was


@needs_mnist
def test_semi_supervised_bench_compares_supervised_and_hybrid(tmp_path: Path) -> None:
    out = run_bench("semisupervised.py", "--steps", "2", "--small", "--labels-per-class", "3", "--out", str(tmp_path))
    assert "3 labels per class (30 labelled MNIST images)" in out
    supervised = next(line for line in out.splitlines() if line.startswith("supervised"))
    hybrid = next(line for line in out.splitlines() if line.startswith("hybrid"))
    assert "mnist_iresnet_supervised100" in supervised and "mnist_iresnet_semisupervised" in hybrid
    assert supervised.split()[-3] == "—" and float(hybrid.split()[-3]) > 0  # bits/dim: only the hybrid has it
    assert all(0 <= float(line.split()[-4]) <= 1 for line in (supervised, hybrid))  # test accuracy
    for name in ("mnist_iresnet_supervised100", "mnist_iresnet_semisupervised"):
        assert (tmp_path / name / "metrics.json").is_file()


@needs_mnist
def test_ot_prior_fits_scores_each_covariance_form_of_a_trained_run(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "REVKIT_DATA": str(DATA_ROOT)}
    run_dir = tmp_path / "ot"
    done = subprocess.run([sys.executable, "-m", "revkit", "run", str(REPO / "specs" / "mnist_ot.toml"),
                           "--out", str(run_dir), "--set", "train.steps=2", "--set", "prior.fit_samples=300",
                           "--set", "prior.covariance_rank=2", "--set", "eval.scores=[]",
                           "--set", "eval.samples=10", "--set", "data.batch_size=16"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = run_bench("ot_prior_fits.py", str(run_dir), "--images", "400", "--samples", "60", "--ranks", "2")
    for row in ("the run's prior", "diagonal Gaussian of the encodings", "full-covariance Gaussian",
                "rank 2 + residual diagonal", "rank 2 alone"):
        assert f"| {row} |" in out
    assert "top-50 share" in out


@needs_mnist
def test_gan_comparison_trains_the_three_specs_and_prints_one_row_each(tmp_path: Path) -> None:
    out = run_bench("gan_comparison.py", "--steps", "2", "--minutes", "0", "--out", str(tmp_path), "--markdown",
                    "--set", "eval.scores=[]", "--set", "eval.test_batches=1", "--set", "eval.samples=4",
                    "--set", "eval.reconstructions=2")
    assert "no time limit" in out
    for label, spec in (("maximum likelihood", "mnist_glow"), ("adversarial", "mnist_gan"),
                        ("hybrid (Flow-GAN)", "mnist_flow_gan")):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} | {spec} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and cells[8] == "2"  # test bits/dim exists; 2 steps
        assert (tmp_path / spec / "samples.png").exists()


def test_activations_bench_prints_torch_against_revkit_elu() -> None:
    out = run_bench("activations.py", "--shape", "2", "3", "4", "4", "--specs", "--repeats", "2")
    rows = [line for line in out.splitlines() if line.startswith("ELU")]
    assert len(rows) == 2 and all(float(row.split()[-1]) < 1e-6 for row in rows)  # the two ELUs agree
    assert "speed-up" in out


def test_precision_bench_times_a_spec_step_in_both_precisions() -> None:
    out = run_bench("precision.py", "--specs", "toy2d_realnvp", "--batch", "8", "--repeats", "2")
    row = next(line for line in out.splitlines() if line.startswith("toy2d_realnvp training step"))
    assert float(row.split()[-1]) < 0.1  # bfloat16's first loss is near float32's
    assert "bfloat16 instructions:" in out and "speed-up" in out

"""The benchmarks under bench/ run end to end and print their tables (tiny sizes; no timing claims)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
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

"""Bad input never crashes revkit: the corpus in tests/bad_inputs/ through the real command line.

Every case of ``tests/bad_inputs/cases.toml`` (a broken spec, ``--set`` override, data folder,
run folder or checkpoint) is run through :func:`revkit.cli.main` in a fresh working folder that
holds an existing run folder. Each must:

- exit with code 2,
- print exactly one line on stderr, ``error: …``, containing every ``expect`` string of the case
  (the field or file, and what is allowed or expected),
- print no traceback, and
- leave every file and folder of the working folder (the existing run folder included) and of the
  corpus exactly as they were: nothing created, written or touched.

Cases that would train fail while the spec is validated, the model is built or the data or
checkpoint is read, so the corpus runs in seconds. A few cases also go through ``python -m revkit``
in a subprocess.
"""

from __future__ import annotations

import functools
import os
import pickle
import random
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from revkit.build import build
from revkit.cli import main
from revkit.spec import load_spec, load_spec_dict
from revkit.runs.checkpoint import LATEST, checkpoint_name, save_checkpoint
from revkit.runs.folder import CHECKPOINT_DIR, SPEC_FILE

CORPUS = Path(__file__).parent / "bad_inputs"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "cases.toml").read_text(encoding="utf-8"))["case"]
GOOD_SPEC = CORPUS / "good_toy.toml"
RUN_NAME = "existing"
STEP = 5
#: the file a malicious pickle would create if loading ran its code (relative to the working folder).
MARKER = "code-ran-while-loading"


# -- the existing run folder and its broken variants ----------------------------------------------
class CreatesMarker:
    """An object whose unpickling calls ``open(path, "w")``: loading it runs code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return open, (str(self.path), "w")


@functools.cache
def checkpoint_state(spec_path: Path, overrides: tuple[str, ...] = (), spec_text_from: Path | None = None
                     ) -> dict[str, Any]:
    """A checkpoint's content for the model of ``spec_path`` (with ``overrides``), untrained; its
    stored spec is that of ``spec_text_from`` (default: the same spec). Cached: treat as read-only."""
    from revkit.data.loaders import make_loaders
    from revkit.train.trainer import Trainer

    spec = load_spec(spec_path, list(overrides))
    built = build(spec)
    loader, _, _ = make_loaders(spec.data, built.source, seed=0)
    stored = spec if spec_text_from is None else load_spec(spec_text_from)
    trainer = Trainer(built.model, built.objective, loader, spec.train, spec_text=stored.to_toml())
    trainer.step = STEP
    return trainer.state_dict()


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def make_run_folder(folder: Path, kind: str, work: Path) -> None:
    """A run folder of ``good_toy.toml`` with one checkpoint at step 5, broken as ``kind`` says."""
    folder.mkdir(parents=True)
    ckpts = folder / CHECKPOINT_DIR
    if kind != "no_spec":
        (folder / SPEC_FILE).write_text(load_spec(GOOD_SPEC).to_toml(), encoding="utf-8")
    if kind == "no_checkpoints":
        return
    wider = ("model.layers[0].hidden=16",)
    if kind == "foreign":  # another spec's checkpoint: its weights and its spec
        save_checkpoint(ckpts, checkpoint_state(GOOD_SPEC, wider))
        return
    if kind == "foreign_weights":  # this spec's text, another model's weights
        save_checkpoint(ckpts, checkpoint_state(GOOD_SPEC, wider, spec_text_from=GOOD_SPEC))
        return
    path = save_checkpoint(ckpts, checkpoint_state(GOOD_SPEC))
    marker = work / MARKER
    if kind in ("ok", "no_spec"):
        return
    if kind == "truncated":
        data = path.read_bytes()
        _write(path, data[: len(data) // 2])
    elif kind == "empty":
        _write(path, b"")
    elif kind == "random":
        _write(path, random.Random(0).randbytes(4096))
    elif kind == "pickle":
        _write(path, pickle.dumps({"format": 1, "step": STEP, "flow": CreatesMarker(marker)}, protocol=2))
    elif kind == "torch_pickle":
        torch.save({"format": 1, "step": STEP, "flow": CreatesMarker(marker)}, path)
    elif kind == "wrong_types":  # every key, some of the wrong type
        state = {**checkpoint_state(GOOD_SPEC), "format": 1, "step": "five", "optimizers": ["adam"]}
        torch.save(state, path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "dangling":
        (ckpts / LATEST).write_text(checkpoint_name(9) + "\n")
    elif kind == "garbage_latest":
        (ckpts / LATEST).write_text("the newest one, I think\n")
    elif kind == "folder_checkpoint":
        path.unlink()
        path.mkdir()
    elif kind == "spec_not_utf8":
        (folder / SPEC_FILE).write_bytes(b"\x80" + (folder / SPEC_FILE).read_bytes())
    elif kind == "latest_not_utf8":
        (ckpts / LATEST).write_bytes(b"step-00000\xff\xfe.pt\n")
    elif kind == "density_is_a_folder":
        (folder / "density.png").mkdir()
    elif kind == "metrics_is_a_folder":
        (folder / "metrics.json").mkdir()
    else:
        raise ValueError(f"unknown run_folder kind {kind!r} in cases.toml")


# -- snapshots ------------------------------------------------------------------------------------
Snapshot = dict[str, tuple[bool, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every file and folder under ``root``: (is a folder, size, modification time in ns)."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (path.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    created = [f"created {p}" for p in sorted(set(after) - set(before))]
    removed = [f"removed {p}" for p in sorted(set(before) - set(after))]
    changed = [f"changed {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return created + removed + changed


# -- running a case -------------------------------------------------------------------------------
def fill(text: str, case: dict[str, Any], work: Path) -> str:
    return (text.replace("{file}", str(CORPUS / case.get("file", "")))
                .replace("{dir}", str(CORPUS))
                .replace("{run}", str(work / "runs" / RUN_NAME))
                .replace("{empty}", str(work / "empty"))
                .replace("{tmp}", str(work)))


def prepare(case: dict[str, Any], work: Path) -> list[str]:
    """The working folder of a case (an existing run folder, an empty folder) and its argv."""
    make_run_folder(work / "runs" / RUN_NAME, case.get("run_folder", "ok"), work)
    (work / "empty").mkdir()
    return [fill(arg, case, work) for arg in case["args"]]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder (the current directory while the case runs)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("REVKIT_DATA", raising=False)
    return folder


def check_message(case: dict[str, Any], code: int, out: str, err: str) -> str:
    assert code == 2, f"exit code {code}; stderr: {err!r}"
    assert "Traceback" not in err + out, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in case["expect"]:
        assert fragment in line, f"{fragment!r} missing from: {line}"
    return line


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: dict[str, Any], work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = prepare(case, work)
    before, corpus_before = snapshot(work), snapshot(CORPUS)
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    check_message(case, code, out, err)
    assert changes(before, snapshot(work)) == []
    assert changes(corpus_before, snapshot(CORPUS)) == []
    assert not (work / MARKER).exists()


SUBPROCESS_CASES = ["unknown_key_in_block_params", "torch_file_that_runs_code"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_python_dash_m_revkit_gives_the_same_one_line_error(name: str, work: Path) -> None:
    case = next(c for c in CASES if c["name"] == name)
    argv = prepare(case, work)
    before = snapshot(work)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "revkit", *argv], capture_output=True, text=True, env=env, check=False,
                          cwd=work, timeout=120)
    check_message(case, proc.returncode, proc.stdout, proc.stderr)
    assert changes(before, snapshot(work)) == []


def test_a_file_the_system_refuses_is_one_line_naming_it(work: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Any OSError that reaches the command line (permissions, a full disk) is a user error too."""
    import revkit.plugin_template

    def refuse(name: str, parent: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(parent / f"revkit-{name}"))

    monkeypatch.setattr(revkit.plugin_template, "write_plugin_skeleton", refuse)
    code = main(["new-plugin", "good", "--dir", str(work)])
    out, err = capsys.readouterr()
    line = check_message({"expect": [str(work / "revkit-good"), "Permission denied"]}, code, out, err)
    assert line == f"error: {work / 'revkit-good'}: Permission denied"


# -- the corpus itself ----------------------------------------------------------------------------
def test_the_corpus_has_at_least_forty_distinct_cases() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)) >= 40
    assert all(c["expect"] for c in CASES), "every case names what its message must contain"


def test_every_spec_file_of_the_corpus_is_used_by_a_case() -> None:
    used = {c["file"] for c in CASES if "file" in c}
    present = {p.name for p in CORPUS.glob("*.toml")} - {"cases.toml"}
    assert present - used == set()


def test_the_good_specs_the_cases_edit_are_valid() -> None:
    """The broken specs are edits of these two; each is valid, so each case tests its one edit."""
    for name in ("good_toy.toml", "good_mnist.toml"):
        build(load_spec(CORPUS / name))


def test_the_good_run_folder_samples_so_the_broken_ones_fail_for_their_breakage(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run_folder(work / "runs" / RUN_NAME, "ok", work)
    assert main(["sample", str(work / "runs" / RUN_NAME), "-n", "4", "--device", "cpu"]) == 0
    assert (work / "runs" / RUN_NAME / "samples-step000005-T1.png").exists()


# -- loading a checkpoint never runs code from it -------------------------------------------------
@pytest.mark.parametrize("how", ["pickle", "torch_pickle"])
def test_loading_a_checkpoint_never_runs_code_from_it(how: str, tmp_path: Path) -> None:
    from revkit.errors import CheckpointError
    from revkit.runs.checkpoint import load_checkpoint

    marker = tmp_path / "marker"
    path = tmp_path / "step-000001.pt"
    payload = {"format": 1, "step": 1, "flow": CreatesMarker(marker)}
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    # the file really would run code if it were unpickled the unsafe way
    probe = tmp_path / "probe"
    shutil.copy(path, probe)
    torch.load(probe, weights_only=False) if how == "torch_pickle" else pickle.loads(probe.read_bytes())
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)  # says why it was refused and names the object; never suggests an unsafe load
    assert str(path) in message and "refused, because loading it would run code" in message
    assert "io.open" in message or "builtins.open" in message
    assert "weights_only" not in message and "succeed" not in message
    assert not marker.exists()


def test_a_spec_dict_from_the_corpus_loads_like_its_file() -> None:
    """load_spec_dict (what the hypothesis tests drive) and load_spec agree on a corpus file."""
    doc = tomllib.loads(GOOD_SPEC.read_text(encoding="utf-8"))
    assert load_spec_dict(doc) == load_spec(GOOD_SPEC)

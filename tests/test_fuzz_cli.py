"""Fuzzing the command line: generated spec files, ``--set`` strings, command lines of every
subcommand, damaged run folders and damaged data folders, all through :func:`revkit.cli.main`.

Every command must end with exit code 0 or 2, print exactly one ``error:`` line on an error, print
no traceback, finish within a time bound, and leave the files that were there before as they were
(on an error nothing is written at all; on success only what the command's job is to write). See
``tests/fuzzing.py`` for the checks and ``REVKIT_FUZZ_EXAMPLES`` for the exploratory mode; what the
fuzzers found is kept as cases of ``tests/bad_inputs/cases.toml``.

Only tiny ``toy2d`` models (and a 16-image MNIST and 8-image folder) are ever trained here.
"""

from __future__ import annotations

import copy
import os
import shutil
import struct
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fuzzing import check_outcome, fuzz_settings, run_cli, toml_document, toml_value

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "bad_inputs"
GOOD_TOY = CORPUS / "good_toy.toml"
SEED_DOCS = {p.name: tomllib.loads(p.read_text(encoding="utf-8")) for p in (GOOD_TOY, CORPUS / "good_mnist.toml")}
#: --set options that keep a `revkit run` of good_toy.toml to a second or two.
TINY = ["--set", "data.n_train=64", "--set", "data.n_test=32", "--set", "eval.samples=16",
        "--set", "train.log_every=1", "--set", "train.device=cpu"]
#: time bounds (seconds) on a loaded 2-core machine: generous, but a hang or a huge allocation fails.
QUICK_S, TRAIN_S = 60.0, 180.0

# -- values ---------------------------------------------------------------------------------------
CONTROL = ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\u2028", "\ufeff", "\x85"]
short_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10)
text_values = (short_text
               | st.builds(lambda a, c, b: a + c + b, short_text, st.sampled_from(CONTROL), short_text)
               | st.sampled_from(["", " ", "cpu", "cuda:99", "moons", "affine_coupling", "runs", "..", "/",
                                  "/dev/null", "~", "a/b", "x" * 300, "é", "日本", "\U0001F600"]))
EXTREMES = [0, 1, -1, 2, 7, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 10**6, 10**7, 10**8, 10**9, 10**12,
            2**53 + 1, 2**63 - 1, -(2**63)]
int_values = st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 70) | st.sampled_from(EXTREMES)
float_values = st.floats() | st.sampled_from([0.0, -0.0, 1e-320, 1e308, -1e308, 0.5, 1.5, 100.0, 100.1])
scalars = st.booleans() | int_values | float_values | text_values


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` arrays (or, alternating, tables)."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


toml_values = (st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(short_text, inner, max_size=3), max_leaves=8)
               | st.integers(30, 90).map(nested))
#: text of a deeply nested value, too deep to build as a Python object in the test.
deep_text = st.integers(60, 5000).flatmap(lambda n: st.sampled_from(["[" * n + "]" * n,
                                                                     "{a=" * n + "1" + "}" * n,
                                                                     "[" * n, "]" * n]))


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder of good_toy.toml (2 steps), made once and copied per example."""
    work = tmp_path_factory.mktemp("good_run")
    outcome = run_cli(["run", str(GOOD_TOY), "--out", "run", "--set", "train.steps=2", *TINY], work)
    assert outcome.code == 0, outcome.err
    return work / "run"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REVKIT_DATA", raising=False)
    monkeypatch.setenv("REVKIT_LOAD_PLUGINS", "")  # built-ins only: the same outcome wherever it runs


@pytest.fixture
def fresh() -> Iterator[Any]:
    """A factory of empty working folders, one per hypothesis example (removed afterwards)."""
    made: list[str] = []

    def make() -> Path:
        made.append(tempfile.mkdtemp(prefix="revkit-fuzz-"))
        return Path(made[-1])

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


# -- spec documents -------------------------------------------------------------------------------
def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``doc`` (tables and arrays)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths_of(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths_of(v, (*prefix, i))
    return found


def mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Up to four edits: a value of any TOML type at an existing or a new key, a key removed."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(0, 4), label="edits")):
        paths = paths_of(doc)
        path = data.draw(st.sampled_from(paths), label="path")
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        edit = data.draw(st.sampled_from(["set", "set", "add", "delete"]), label="edit")
        if edit == "delete" and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif edit == "add" and isinstance(parent, dict):
            parent[data.draw(short_text | st.sampled_from(["hidden", "n_train", "root", "seed", "extra"]),
                             label="key")] = data.draw(toml_values, label="value")
        else:
            parent[path[-1]] = data.draw(toml_values, label="value")
    return doc


def damage_text(text: str, data: st.DataObject) -> bytes:
    """The spec's bytes, sometimes damaged: a byte-order mark, bytes that are not UTF-8, a deeply
    nested line, a cut."""
    raw = text.encode("utf-8")
    kind = data.draw(st.sampled_from(["none", "none", "bom", "bytes", "deep", "cut"]), label="damage")
    if kind == "bom":
        return b"\xef\xbb\xbf" + raw
    if kind == "bytes":
        at = data.draw(st.integers(0, len(raw)), label="at")
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=8), label="bytes") + raw[at:]
    if kind == "deep":
        return raw + f"deep = {data.draw(deep_text, label='deep')}\n".encode()
    if kind == "cut":
        return raw[: data.draw(st.integers(0, len(raw)), label="cut")]
    return raw


@fuzz_settings(60)
@given(data=st.data())
def test_fuzz_spec_files_through_validate_and_inspect(data: st.DataObject, fresh: Any) -> None:
    """Mutated valid specs (values of every TOML type, extreme numbers, deep nesting, control
    characters, unknown keys, damaged bytes) through ``validate`` and ``inspect``."""
    work = fresh()
    name = data.draw(st.sampled_from(sorted(SEED_DOCS)), label="seed spec")
    text = toml_document(mutate(SEED_DOCS[name], data))
    (work / "spec.toml").write_bytes(damage_text(text, data))
    command = data.draw(st.sampled_from(["validate", "inspect"]), label="command")
    check_outcome(run_cli([command, "spec.toml"], work), QUICK_S)


# -- --set strings --------------------------------------------------------------------------------
KNOWN_PATHS = ["train.steps", "train.seed", "train.lr", "train.device", "train.betas", "data.n_train", "data.n_test",
               "data.root", "data.seed", "data.batch_size", "data.test_batch_size", "data.kind", "output.dir",
               "output.name", "eval.samples", "eval.temperature", "eval.inception_weights", "eval.reconstructions",
               "model.layers[0].hidden", "model.layers[0].repeat", "model.layers[9].hidden", "model.input_shape",
               "model.layers", "model", "prior.kind", "objective.kind", "objective.critic_hidden", "train"]
set_paths = st.sampled_from(KNOWN_PATHS) | short_text | st.builds(lambda a, c: a + c, st.sampled_from(KNOWN_PATHS),
                                                                  st.sampled_from(CONTROL + [".", "[", "]", "="]))
set_values = toml_values.map(toml_value) | text_values | deep_text
set_strings = st.builds(lambda p, v: f"{p}={v}", set_paths, set_values) | short_text


@fuzz_settings(60)
@given(overrides=st.lists(set_strings, min_size=1, max_size=3), command=st.sampled_from(["validate", "inspect"]))
def test_fuzz_set_overrides(overrides: list[str], command: str, fresh: Any) -> None:
    """Random ``--set PATH=VALUE`` strings on a good spec."""
    work = fresh()
    argv = [command, str(GOOD_TOY)] + [arg for o in overrides for arg in ("--set", o)]
    check_outcome(run_cli(argv, work), QUICK_S)


# -- command lines of every subcommand --------------------------------------------------------------
NUMBERISH = ["0", "1", "-1", "2", "64", "nan", "inf", "-inf", "1e308", "1e-320", "-0", "0x10", "1_000", " 3", "",
             "99999999999999999999999", "4294967296", "4294967295", "100000", "100001", "100", "100.5", "abc"]
number_args = st.sampled_from(NUMBERISH) | int_values.map(str) | float_values.map(repr)
path_args = st.sampled_from(["run", "missing", "run/spec.toml", "run/checkpoints", "out.png", "sub/out.png",
                             "run/spec.toml/x.png", "", ".", "/"]) | text_values


def sample_argv(data: st.DataObject) -> list[str]:
    argv = ["sample", data.draw(st.sampled_from(["run"]) | path_args, label="run_dir")]
    for option in data.draw(st.lists(st.sampled_from(["-n", "--temperature", "--seed", "--out", "--device"]),
                                     max_size=4, unique=True), label="options"):
        if option == "--out":
            value = data.draw(path_args, label="out")
        elif option == "--device":
            value = data.draw(st.sampled_from(["cpu", "cuda", "cuda:7", "auto", "gpu", "", "CPU"]) | short_text,
                              label="device")
        else:
            value = data.draw(number_args, label=option)
        argv += [option, value]
    if "--device" not in argv:
        argv += ["--device", "cpu"]
    if "-n" in argv:  # keep successful draws cheap: at most 400 points
        i = argv.index("-n") + 1
        argv[i] = argv[i] if not argv[i].strip().lstrip("-").isdigit() or abs(int(argv[i])) > 100_000 \
            else str(min(int(argv[i]), 400))
    return argv


def sample_outputs(argv: list[str], option: str = "--out") -> list[str]:
    """What ``sample … --out FILE`` (or ``run … --out DIR``, ``report … -o PAGE``) may write: FILE or
    DIR, whatever its name, and the folders above it."""
    if option not in argv or argv.index(option) + 1 >= len(argv):
        return []
    out = argv[argv.index(option) + 1]
    parts = Path(out).parts
    return [out, *([parts[0]] if parts and not Path(out).is_absolute() else [])]


def translate_argv(data: st.DataObject) -> list[str]:
    """``translate`` on the toy run (which does not translate) or an odd folder, with odd options."""
    argv = ["translate", data.draw(st.sampled_from(["run"]) | path_args, label="run_dir")]
    for option in data.draw(st.lists(st.sampled_from(["-n", "--seed", "--out", "--device"]), max_size=3,
                                     unique=True), label="options"):
        if option == "--out":
            value = data.draw(path_args, label="out")
        elif option == "--device":
            value = data.draw(st.sampled_from(["cpu", "cuda:7", "gpu", ""]) | short_text, label="device")
        else:
            value = data.draw(number_args, label=option)
        argv += [option, value]
    return argv if "--device" in argv else [*argv, "--device", "cpu"]


def report_argv(data: st.DataObject) -> list[str]:
    """``report`` of one or two run folders (or odd paths), with or without ``-o PAGE``."""
    dirs = data.draw(st.lists(st.sampled_from(["run", "run", "missing", "run/spec.toml", "."]) | path_args,
                              min_size=0, max_size=2), label="dirs")
    out = ["-o", data.draw(st.sampled_from(["page.html", "sub/page.html", "run", "run/spec.toml/x.html"])
                           | path_args, label="page")] if data.draw(st.booleans(), label="-o") else []
    return ["report", *dirs, *out]


def run_argv(data: st.DataObject) -> list[str]:
    steps = data.draw(st.integers(1, 3), label="steps")
    spec = data.draw(path_args, label="spec") if data.draw(st.integers(0, 4), label="odd spec") == 0 else str(GOOD_TOY)
    argv = ["run", spec,
            "--set", f"train.steps={steps}", *TINY]
    extra = data.draw(st.lists(st.builds(lambda p, v: f"{p}={v}",
                                         st.sampled_from(["train.seed", "data.seed", "eval.temperature",
                                                          "eval.samples", "data.batch_size", "output.dir",
                                                          "output.name", "train.checkpoint_every",
                                                          "train.keep_checkpoints", "data.noise"]),
                                         st.sampled_from(["0", "1", "7", "0.5", "16"]) | number_args | text_values),
                                max_size=2), label="extra")
    for text in extra:
        if text.startswith(("eval.samples=", "data.batch_size=")):
            value = text.split("=", 1)[1].strip()
            if value.isdigit() and 1 <= int(value) <= 100_000:  # a valid size: keep the run tiny
                text = text.split("=", 1)[0] + f"={min(int(value), 32)}"
        argv += ["--set", text]
    if data.draw(st.booleans(), label="--out"):
        odd = data.draw(st.integers(0, 3), label="odd out") == 0
        argv += ["--out", data.draw(path_args if odd else st.sampled_from(["out/a", "run", "run/spec.toml"]), label="out")]
    if data.draw(st.integers(0, 3), label="--resume") == 0:
        argv.append("--resume")
    if data.draw(st.booleans(), label="--nproc"):  # never more than one process here
        argv += ["--nproc", data.draw(st.sampled_from(["1", "0", "-1", "1.5", "nan", "", "99999", "x"]), label="n")]
    return argv


def command_line(data: st.DataObject) -> tuple[list[str], list[str], float]:
    """A command line, the paths it may write on success, and its time bound."""
    command = data.draw(st.sampled_from(["sample", "sample", "run", "validate", "inspect", "schema", "plugins",
                                         "compare", "report", "translate", "new-plugin", "junk"]), label="command")
    if command == "sample":
        argv = sample_argv(data)
        return argv, ["run/samples-", *sample_outputs(argv)], QUICK_S
    if command == "translate":  # the toy run has one domain: never a picture, but the options are checked first
        argv = translate_argv(data)
        return argv, ["run/translations-", *sample_outputs(argv)], QUICK_S
    if command == "report":
        argv = report_argv(data)
        return argv, ["run/report.html", "report.html", *sample_outputs(argv, "-o")], QUICK_S
    if command == "run":
        argv = run_argv(data)
        dirs = [a.split("=", 1)[1].strip().strip("'\"") for a in argv if a.startswith("output.dir=")]
        return argv, ["runs", "out", "run/", "run", *sample_outputs(argv), *[d for d in dirs if d]], TRAIN_S
    if command in ("validate", "inspect"):
        spec = data.draw(st.sampled_from([str(GOOD_TOY), "good_toy", "mnist_glow"]) | path_args, label="spec")
        return [command, spec, *[a for o in data.draw(st.lists(set_strings, max_size=2), label="sets")
                                 for a in ("--set", o)]], [], QUICK_S
    if command == "schema":
        return ["schema", *data.draw(st.lists(short_text, max_size=1), label="args")], [], QUICK_S
    if command == "plugins":
        return ["plugins", *data.draw(st.sampled_from([[], ["--json"], ["--jsn"], ["x"]]), label="args")], [], QUICK_S
    if command == "compare":
        dirs = data.draw(st.lists(st.sampled_from(["run", "missing", "run/spec.toml", "."]) | path_args,
                                  min_size=0, max_size=3), label="dirs")
        return ["compare", *dirs, *data.draw(st.sampled_from([[], ["--markdown"]]), label="md")], [], QUICK_S
    if command == "new-plugin":
        name = data.draw(st.sampled_from(["good", "my_plugin", "Bad", "1x", "a-b", ""]) | short_text, label="name")
        folder = data.draw(st.sampled_from(["plugins", "run/spec.toml", "missing/deeper"]) | path_args, label="dir")
        return ["new-plugin", name, "--dir", folder], ["plugins", "missing", f"revkit-{name}",
                                                       os.path.normpath(folder) if folder else "."], QUICK_S  # 0/ → 0 (run 3d)
    return data.draw(st.lists(text_values | st.sampled_from(["--help", "-h", "--version", "--set", "-n"]),
                              max_size=4), label="argv"), [], QUICK_S


@fuzz_settings(40)
@given(data=st.data())
def test_fuzz_command_lines(data: st.DataObject, good_run: Path, fresh: Any) -> None:
    """Command lines for every subcommand, with option values of every kind, in a folder holding
    a finished run folder (``run``)."""
    work = fresh()
    shutil.copytree(good_run, work / "run")
    argv, may_write, limit = command_line(data)
    outcome = run_cli(argv, work)
    check_outcome(outcome, limit, may_write)


# -- damaged run folders ----------------------------------------------------------------------------
def damage_file(path: Path, data: st.DataObject) -> None:
    """Break one file of a run folder in one of several ways."""
    kind = data.draw(st.sampled_from(["truncate", "garble", "empty", "delete", "folder", "text", "bytes"]),
                     label=f"damage {path.name}")
    raw = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, max(0, len(raw) - 1)), label="keep")])
    elif kind == "garble":
        at = data.draw(st.integers(0, max(0, len(raw) - 1)), label="at")
        path.write_bytes(raw[:at] + data.draw(st.binary(min_size=1, max_size=16), label="junk") + raw[at + 16:])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "delete":
        path.unlink()
    elif kind == "folder":
        path.unlink()
        path.mkdir()
    elif kind == "text":
        path.write_text(data.draw(st.sampled_from(["step-000999.pt", "../spec.toml", "step-000002.pt\n\n",
                                                   "[model]\n", "{}", "step-000002.pt\x00"]) | text_values,
                                  label="text"), encoding="utf-8")
    else:
        path.write_bytes(data.draw(st.binary(max_size=64) | st.sampled_from([b"\xff\xfe\x00", b"\xef\xbb\xbf[model]",
                                                                           b"\x80\x02cos\nsystem\n)\x81."]),
                                   label="bytes"))


@fuzz_settings(30)
@given(data=st.data())
def test_fuzz_damaged_run_folders(data: st.DataObject, good_run: Path, fresh: Any) -> None:
    """A finished run folder with one to three files broken, through ``sample``, ``run --resume``,
    ``compare`` and ``report``."""
    work = fresh()
    run = work / "run"
    shutil.copytree(good_run, run)
    files = sorted(p for p in run.rglob("*") if p.is_file())
    for path in data.draw(st.lists(st.sampled_from(files), min_size=1, max_size=3, unique=True), label="files"):
        damage_file(path, data)
    command = data.draw(st.sampled_from(["sample", "resume", "compare", "report"]), label="command")
    if command == "sample":
        argv, may_write = ["sample", "run", "-n", "16", "--device", "cpu"], ["run/samples-"]
    elif command == "resume":
        argv, may_write = ["run", str(GOOD_TOY), "--out", "run", "--resume", "--set", "train.steps=3", *TINY], ["run"]
    elif command == "report":
        argv, may_write = ["report", "run"], ["run/report.html"]
    else:
        argv, may_write = ["compare", "run"], []
    check_outcome(run_cli(argv, work), TRAIN_S, may_write)


# -- damaged data folders ----------------------------------------------------------------------------
def idx_images(n: int) -> bytes:
    return struct.pack(">IIII", 0x803, n, 28, 28) + np.random.default_rng(n).integers(0, 256, (n, 28, 28),
                                                                                       dtype=np.uint8).tobytes()


def idx_labels(n: int) -> bytes:
    return struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))


def make_mnist(root: Path, train: int = 16, test: int = 8) -> list[Path]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    files = {"train-images-idx3-ubyte": idx_images(train), "train-labels-idx1-ubyte": idx_labels(train),
             "t10k-images-idx3-ubyte": idx_images(test), "t10k-labels-idx1-ubyte": idx_labels(test)}
    for name, content in files.items():
        (raw / name).write_bytes(content)
    return [raw / name for name in files]


def make_images(root: Path) -> list[Path]:
    made = []
    for i in range(12):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i}.png"
        Image.fromarray(np.full((6 + i % 3, 8, 3), 20 * i, dtype=np.uint8)).save(path)
        made.append(path)
    return made


MNIST_RUN = ["--set", "data.batch_size=8", "--set", "data.test_batch_size=8", "--set", "train.steps=1",
             "--set", "eval.samples=4", "--set", "eval.reconstructions=2", "--set", "train.device=cpu"]
IMAGE_SPEC = """[model]
input_shape = [3, 8, 8]
[[model.layers]]
block = "squeeze"
[[model.layers]]
block = "affine_coupling"
hidden = 8
[data]
kind = "image_folder"
size = 8
test_fraction = 0.25
batch_size = 4
test_batch_size = 4
[train]
device = "cpu"
steps = 1
[eval]
samples = 4
reconstructions = 2
"""


@fuzz_settings(20)
@given(data=st.data())
def test_fuzz_damaged_data_folders(data: st.DataObject, fresh: Any) -> None:
    """A tiny MNIST (IDX files) or image folder with files broken (cut, garbled, counts that do not
    match, a folder or a text file in place of an image, a name that is not UTF-8), through ``run``."""
    work = fresh()
    kind = data.draw(st.sampled_from(["mnist", "image_folder"]), label="kind")
    root = work / "data"
    if kind == "mnist":
        files = make_mnist(root)
        argv = ["run", str(CORPUS / "good_mnist.toml"), "--set", "data.root=data", *MNIST_RUN]
    else:
        files = make_images(root)
        (work / "spec.toml").write_text(IMAGE_SPEC, encoding="utf-8")
        argv = ["run", "spec.toml", "--set", "data.root=data"]
    for path in data.draw(st.lists(st.sampled_from(files), min_size=1, max_size=2, unique=True), label="files"):
        how = data.draw(st.sampled_from(["damage", "count", "odd name"]), label="how")
        if how == "count" and kind == "mnist":  # a valid file with another number of entries
            n = data.draw(st.integers(0, 40), label="n")
            path.write_bytes(idx_labels(n) if "labels" in path.name else idx_images(n))
        elif how == "odd name":
            os.rename(path, os.fsencode(path.parent) + b"/\xff\xfe" + os.fsencode(path.name))
        else:
            damage_file(path, data)
    argv += ["--out", "out"]
    check_outcome(run_cli(argv, work), TRAIN_S, ["out"])


def test_the_fuzzers_own_good_cases_succeed(good_run: Path, fresh: Any) -> None:
    """The undamaged inputs the fuzzers start from work, so each failure is the damage's."""
    work = fresh()
    shutil.copytree(good_run, work / "run")
    assert run_cli(["sample", "run", "-n", "16", "--device", "cpu"], work).code == 0
    make_mnist(work / "data")
    outcome = run_cli(["run", str(CORPUS / "good_mnist.toml"), "--set", "data.root=data", *MNIST_RUN, "--out", "m"],
                      work)
    assert outcome.code == 0, outcome.err
    make_images(work / "imgs")
    (work / "spec.toml").write_text(IMAGE_SPEC, encoding="utf-8")
    outcome = run_cli(["run", "spec.toml", "--set", "data.root=imgs", "--out", "i"], work)
    assert outcome.code == 0, outcome.err


def test_check_outcome_catches_what_it_should(fresh: Any) -> None:
    """The property checks are not vacuous: a traceback, two lines, a wrong exit code or a file
    written on error each fail them."""
    from fuzzing import Outcome

    good = Outcome(["x"], 2, "", "error: spec.toml: something wrong; allowed: this\n", 0.1)
    check_outcome(good, 1.0)
    for bad in (Outcome(["x"], 1, "", "error: boom went the thing\n", 0.1),
                Outcome(["x"], 2, "", "Traceback (most recent call last):\nerror: boom went the thing\n", 0.1),
                Outcome(["x"], 2, "", "error: one line of the error\nerror: two\n", 0.1),
                Outcome(["x"], 2, "", "error: one line of the error\n", 5.0),
                Outcome(["x"], 2, "", "error: one line of the error\n", 0.1, ["created run"])):
        with pytest.raises(AssertionError):
            check_outcome(bad, 1.0)
    with pytest.raises(AssertionError):
        check_outcome(Outcome(["x"], 0, "", "", 0.1, ["changed run/spec.toml"]), 1.0, ["run/samples-"])


# -- what the exploratory runs found, kept as fixed examples --------------------------------------
#: each failure of an exploratory run (REVKIT_FUZZ_EXAMPLES), replayed with the fuzzers' own checks:
#: (damaged file of the good run folder, its new bytes, command) — see docs/robustness.md.
FOUND_IN_RUN_FOLDERS = [
    ("metrics.jsonl", b"1", "resume"),  # a JSON number, not a record: AttributeError on resume
    ("metrics.jsonl", b"\x80", "resume"),  # not UTF-8: UnicodeDecodeError on resume
    ("metrics.jsonl", b'{"step": "two"}\n[1]\n{"step": true}\n', "resume"),  # records with no integer step
    ("metrics.jsonl", b"\xff\xfe", "compare"),
    ("spec.toml", b"\x80", "compare"),  # not UTF-8: UnicodeDecodeError in compare (second exploratory run)
    ("metrics.json", b"\x80{}", "compare"),
]


@pytest.mark.parametrize(("name", "content", "command"), FOUND_IN_RUN_FOLDERS,
                         ids=[f"{n}-{i}-{c}" for i, (n, _, c) in enumerate(FOUND_IN_RUN_FOLDERS)])
def test_found_by_exploration_damaged_run_folders(name: str, content: bytes, command: str, good_run: Path,
                                                  fresh: Any) -> None:
    work = fresh()
    run = work / "run"
    shutil.copytree(good_run, run)
    (run / name).write_bytes(content)
    if command == "resume":
        argv, may_write = ["run", str(GOOD_TOY), "--out", "run", "--resume", "--set", "train.steps=3", *TINY], ["run"]
    else:
        argv, may_write = ["compare", "run"], []
    outcome = run_cli(argv, work)
    check_outcome(outcome, TRAIN_S, may_write)
    if command == "resume":  # the damaged lines are dropped; the records of steps 1-3 remain
        assert outcome.code == 0, outcome.err
        from revkit.train.metrics import read_metrics
        assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [3]


def test_found_by_exploration_report_over_a_folder_changes_nothing(good_run: Path, fresh: Any) -> None:
    """``report run`` where ``report.html`` is a folder (the exploratory run after the port onto the run layer):
    the error was right, but the atomic write had created and removed a temporary file in the run folder
    first, changing it; the folder is now refused before anything is written."""
    work = fresh()
    run = work / "run"
    shutil.copytree(good_run, run)
    (run / "report.html").unlink(missing_ok=True)
    (run / "report.html").mkdir()
    outcome = run_cli(["report", "run"], work)
    check_outcome(outcome, QUICK_S, [])
    assert outcome.code == 2 and "report.html" in outcome.err


def test_found_by_exploration_sample_out_without_png_suffix(good_run: Path, fresh: Any) -> None:
    """``sample --out missing`` writes the PNG ``missing`` (the fuzzer's may_write had to allow it),
    and ``--out .`` is refused as a folder (the fuzzer's own helper failed on it)."""
    work = fresh()
    shutil.copytree(good_run, work / "run")
    argv = ["sample", "run", "--out", "missing", "--device", "cpu"]
    outcome = run_cli(argv, work)
    check_outcome(outcome, QUICK_S, ["run/samples-", *sample_outputs(argv)])
    assert outcome.code == 0 and (work / "missing").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    argv = ["sample", "run", "--out", ".", "--device", "cpu"]
    outcome = run_cli(argv, work)
    check_outcome(outcome, QUICK_S, ["run/samples-", *sample_outputs(argv)])
    assert outcome.code == 2 and "is a folder" in outcome.err


def test_found_by_exploration_run_out_with_any_name(fresh: Any) -> None:
    """``run --out missing`` creates the run folder ``missing`` (third exploratory run: the fuzzer's
    may_write had to allow the --out folder of ``run`` too)."""
    work = fresh()
    argv = ["run", str(GOOD_TOY), "--set", "train.steps=1", *TINY, "--out", "missing"]
    outcome = run_cli(argv, work)
    check_outcome(outcome, TRAIN_S, ["runs", *sample_outputs(argv)])
    assert outcome.code == 0 and (work / "missing" / "metrics.json").exists()
    # run 3c: --set output.dir=00 puts the run folder under 00 (the oracle had to allow output.dir too)
    argv = ["run", str(GOOD_TOY), "--set", "train.steps=1", *TINY, "--set", "output.dir=00"]
    outcome = run_cli(argv, work)
    check_outcome(outcome, TRAIN_S, ["runs", "missing", "00"])
    assert outcome.code == 0 and len(list((work / "00").glob("good_toy-*/metrics.json"))) == 1


def test_found_by_exploration_data_far_out_of_scale_diverges_naming_the_largest_gradient(fresh: Any) -> None:
    """``data.noise=4586324`` overflows the gradient norm while every entry is finite (run 3b): exit 3
    (documented divergence) with a message that says where, not "first non-finite gradients: ?"."""
    work = fresh()
    argv = ["run", str(GOOD_TOY), "--set", "train.steps=1", *TINY, "--set", "data.noise=4586324"]
    outcome = run_cli(argv, work)
    check_outcome(outcome, TRAIN_S, ["runs"])
    assert outcome.code == 3 and "largest entry" in outcome.err and "flow." in outcome.err


def test_found_by_exploration_broken_png_chunk_in_an_image_folder(fresh: Any) -> None:
    """A PNG whose chunk is garbled made PIL raise SyntaxError ("broken PNG file") from inside
    the data loader (second exploratory run): now one error line naming the file."""
    work = fresh()
    files = make_images(work / "data")
    raw = files[1].read_bytes()
    files[1].write_bytes(raw[:53] + b"\x0c\x00\x00\x01\x00\x00\x00\x00" + raw[53 + 16:])
    (work / "spec.toml").write_text(IMAGE_SPEC, encoding="utf-8")
    outcome = run_cli(["run", "spec.toml", "--set", "data.root=data", "--out", "out"], work)
    check_outcome(outcome, TRAIN_S, ["out"])
    assert outcome.code == 2 and files[1].name in outcome.err and "not a readable image" in outcome.err

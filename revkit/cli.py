"""The ``revkit`` command line.

::

    revkit run SPEC [--set k=v]… [--out DIR] [--resume] [--nproc N]
                                                          train, evaluate; prints the run folder last
    revkit validate SPEC [--set k=v]…                     check the spec and build the model (no data read)
    revkit inspect SPEC [--set k=v]…                      compact graph and per-layer table
    revkit plugins [--json]                               loaded plugins, what they registered, failures
    revkit schema                                         JSON Schema of spec files
    revkit new-plugin NAME [--dir DIR]                    write the skeleton of a plugin distribution revkit-NAME
    revkit sample RUN_DIR [-n 64] [--temperature T] [--out FILE]   samples from the latest checkpoint
    revkit compare RUN_DIR… [--markdown]                  one table of finished runs of any model kind
    revkit translate RUN_DIR [-n 16] [--out FILE]         test inputs of both domains and their translations

Every user error (:class:`~revkit.errors.RevkitError`: a missing spec file, a TOML syntax error, an
unknown block, a bad field, an existing run folder, a broken checkpoint, …; a usage error; a file the
operating system refuses to read or write) prints one line ``error: <message>`` on stderr and exits
with code 2. Ctrl-C (SIGTERM) during ``run`` finishes the current step, saves a checkpoint and exits
with code 130 (143). Training that diverges (a NaN or infinite loss or gradient) prints one line
naming where and exits with code 3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from revkit.errors import RevkitError, printable
from revkit.limits import MAX_SAMPLES, PROCESSES, SAMPLE_COUNT, SEED, TEMPERATURE
from revkit.paths import path_problem
from revkit.version import __version__

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def one_line(error: BaseException) -> str:
    """The error's message on one line (continuation lines joined with '; ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


# -- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from revkit.spec import load_spec
    from revkit.spec.bundled import resolve_spec
    from revkit.train.distributed import env_rank
    from revkit.train.interrupt import SIGNALS, exit_code
    from revkit.train.launch import launch
    from revkit.runs.run import run_spec

    path = resolve_spec(args.spec)
    spec = load_spec(path, args.overrides)
    if args.nproc > 1:  # checked here first, so a spec error is one line, not one per process
        argv = ["run", args.spec, *[f"--set={o}" for o in args.overrides], *(["--out", args.out] if args.out else []),
                *(["--resume"] if args.resume else [])]
        return launch(args.nproc, argv)
    outcome = run_spec(spec, path, out=args.out, resume=args.resume)
    if env_rank() == 0:
        print(outcome.run_dir, flush=True)
    stopped = outcome.result.stopped
    return exit_code(stopped) if stopped in SIGNALS else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from revkit.build import build
    from revkit.spec import load_spec
    from revkit.spec.bundled import resolve_spec
    from revkit.summary import fmt_shape, parameter_count

    built = build(load_spec(resolve_spec(args.spec), args.overrides))
    count = parameter_count(built.model) + parameter_count(built.objective)
    print(f"ok: {count:,} parameters, latent shape {fmt_shape(built.model.latent_shape)} "
          f"(input {fmt_shape(built.model.input_shape)})")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from revkit.build import build
    from revkit.spec import load_spec
    from revkit.spec.bundled import resolve_spec
    from revkit.summary import render_inspect

    built = build(load_spec(resolve_spec(args.spec), args.overrides))
    print(render_inspect(built.model))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from revkit.plugins import get_registries

    regs = get_registries()
    if args.json:
        doc = {
            "plugins": [p.as_dict() for p in regs.plugins],
            "failures": [f.as_dict() for f in regs.failures],
            "block_hints": dict(regs.block_hints),
            "logger_hints": dict(regs.logger_hints),
        }
        print(json.dumps(doc, indent=2))
        return 0
    for plugin in regs.plugins:
        kind = " (built-in)" if plugin.builtin else ""
        print(f"{plugin.name} {plugin.version}{kind}")
        for what, names in plugin.registered.items():
            print(f"  {what}: {', '.join(names)}")
    for failure in regs.failures:
        print(f"FAILED {failure.name}: {failure.error}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from revkit.spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from revkit.plugin_template import write_plugin_skeleton

    root = write_plugin_skeleton(args.name, Path(args.dir))
    print(f"wrote {root}; next: pip install -e {root} && python -m pytest {root / 'tests'}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from revkit.runs.sample import sample_run

    path = sample_run(Path(args.run_dir), n=args.n, temperature=args.temperature,
                      out=None if args.out is None else Path(args.out), device=args.device, seed=args.seed)
    print(path)
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from revkit.runs.translate import translate_run

    path = translate_run(Path(args.run_dir), n=args.n, out=None if args.out is None else Path(args.out),
                         device=args.device, seed=args.seed)
    print(path)
    return 0


# -- the parser --------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    from revkit.runs.compare import compare

    print(compare(args.run_dirs, markdown=args.markdown), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from revkit.runs.page import write_comparison_page, write_run_page

    if len(args.run_dirs) == 1:
        path = write_run_page(args.run_dirs[0], args.output)
    else:
        path = write_comparison_page(args.run_dirs, args.output or "report.html")
    print(path)
    return 0


def _path(text: str) -> str:
    """A path option: printable characters only (see :mod:`revkit.paths`)."""
    problem = path_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"'{printable(text)}' {problem}")
    return text


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", text.strip().lower()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    return text


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` line and exit code 2, like every
    other user error (argparse's default prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        _say(f"error: {self.prog}: {printable(message)} (see {self.prog} --help)")
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="revkit", description="Reversible generative networks from a TOML spec.")
    parser.add_argument("--version", action="version", version=f"revkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_spec(p: argparse.ArgumentParser) -> None:
        p.add_argument("spec", type=_path, metavar="SPEC",
                       help="a spec file (TOML), or the name of a bundled spec such as 'mnist_glow'")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                       help="override a spec field, e.g. --set train.steps=100 (repeatable)")

    p = sub.add_parser("run", help="train a model and evaluate it; prints the run folder last")
    with_spec(p)
    p.add_argument("--out", type=_path, metavar="DIR", help="the run folder (default: output.dir/output.name)")
    p.add_argument("--resume", action="store_true", help="continue the run in the folder from its latest checkpoint")
    p.add_argument("--nproc", type=PROCESSES.option(), default=1, metavar="N",
                   help="train with N local processes (DistributedDataParallel; gloo on CPU, nccl on CUDA); "
                        "for several machines use torchrun, see docs/robustness.md")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a spec and build its model without reading data")
    with_spec(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("inspect", help="print the model graph and a per-layer table")
    with_spec(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("plugins", help="list plugins, what they registered, and failures")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("schema", help="print the JSON Schema of spec files")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("sample", help="draw samples from a run's latest checkpoint into a PNG")
    p.add_argument("run_dir", type=_path, metavar="RUN_DIR", help="a run folder")
    p.add_argument("-n", type=SAMPLE_COUNT.option(), default=64,
                   help=f"number of samples (default 64, at most {MAX_SAMPLES:,})")
    p.add_argument("--temperature", type=TEMPERATURE.option(), default=1.0,
                   help=f"scale of the prior's std (default 1; {TEMPERATURE.allowed()}), as eval.temperature")
    p.add_argument("--out", type=_path, metavar="FILE", help="the PNG to write (default RUN_DIR/samples-step<N>-T<T>.png)")
    p.add_argument("--device", type=_device, default="auto", help="'cpu', 'cuda', 'cuda:N' or 'auto' (default)")
    p.add_argument("--seed", type=SEED.option(), default=0, help=f"random seed (default 0; {SEED.allowed()}), as train.seed")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("compare", help="a table of finished runs of any kind: model, objective and every metric they have")
    p.add_argument("run_dirs", type=_path, metavar="RUN_DIR", nargs="+", help="finished run folders")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("report", help="a self-contained HTML page of one run (its report.html) or comparing several")
    p.add_argument("run_dirs", type=_path, nargs="+", metavar="RUN_DIR", help="run folders (any kinds)")
    p.add_argument("-o", "--output", type=_path, default=None, metavar="PAGE",
                   help="where the page goes (default: RUN_DIR/report.html for one run, ./report.html for several)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("translate", help="a grid of test images of both domains and their translations "
                                         "(runs of model.kind = 'aligned_flows')")
    p.add_argument("run_dir", type=_path, metavar="RUN_DIR", help="a run folder")
    p.add_argument("-n", type=SAMPLE_COUNT.option(), default=16,
                   help=f"images per domain (default 16, at most {MAX_SAMPLES:,})")
    p.add_argument("--out", type=_path, metavar="FILE",
                   help="the PNG to write (default RUN_DIR/translations-step<N>.png)")
    p.add_argument("--device", type=_device, default="auto", help="'cpu', 'cuda', 'cuda:N' or 'auto' (default)")
    p.add_argument("--seed", type=SEED.option(), default=0, help=f"random seed (default 0; {SEED.allowed()}), as train.seed")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("new-plugin", help="write the skeleton of a plugin distribution revkit-NAME")
    p.add_argument("name", metavar="NAME", help="the plugin's name, a lower-case identifier such as 'splines'")
    p.add_argument("--dir", type=_path, default=".", help="where to create the folder revkit-NAME (default: here)")
    p.set_defaults(func=cmd_new_plugin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error, 3 diverged, 130 SIGINT,
    143 SIGTERM)."""
    try:
        args = build_parser().parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # a usage error (one line already printed), --help or --version
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    try:
        return int(args.func(args))
    except RevkitError as exc:
        # under torchrun an error every rank raises alike is reported once, by rank 0
        rank = int(os.environ.get("RANK", "0") or 0)
        if rank == 0 or not getattr(exc, "replicated", False):
            _say(f"{f'rank {rank}: ' if rank else ''}error: {one_line(exc)}")
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))  # TrainingDiverged: EXIT_DIVERGED
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `revkit inspect spec.toml | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # the file system refused (a file in the way, permissions, a full disk)
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"error: {where}{exc.strerror or one_line(exc)}")
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

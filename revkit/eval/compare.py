r"""``revkit compare RUN_DIR…``: a table of VAE runs, like the seed report's.

One row per run folder, from its ``spec.toml`` and ``metrics.json``:

* **model** — ``VAE`` for an empty posterior flow, else ``VAE + <blocks>`` (the distinct block
  names of ``model.vae.posterior_flow``, ``affine_coupling`` shown as ``Real NVP``);
* **K** — the number of flow steps: the blocks of the posterior flow with ``repeat`` expanded, not
  counting ``permute`` (a fixed reordering, not a step);
* **ELBO**, **−log p(x|z)**, **IWAE −log p(x)** — ``test_elbo``, ``test_recon_nll``, ``test_nll_iwae``
  in nats, averaged over the test split; **L** the importance samples per image
  (``objective.iwae_samples``); **steps** the optimizer steps taken.

Plain text by default; ``--markdown`` prints a Markdown table. A folder without ``metrics.json``
(a run that has not finished) or whose spec is not a VAE is an error naming the folder.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revkit.errors import RevkitError
from revkit.objectives.elbo import ElboParams

#: how a posterior flow's block names read in the model column.
BLOCK_LABELS = {"affine_coupling": "Real NVP", "planar": "planar"}
#: blocks that do not count as flow steps.
NOT_STEPS = frozenset({"permute"})
HEADERS = ("run", "model", "K", "ELBO", "−log p(x|z)", "IWAE −log p(x)", "L", "steps")


@dataclass(frozen=True)
class Row:
    """One run of the table."""

    run: str
    model: str
    steps_k: int
    elbo: float
    recon_nll: float
    nll_iwae: float
    iwae_samples: int
    train_steps: int

    def cells(self) -> tuple[str, ...]:
        return (self.run, self.model, str(self.steps_k), f"{self.elbo:.2f}", f"{self.recon_nll:.2f}",
                f"{self.nll_iwae:.2f}", str(self.iwae_samples), str(self.train_steps))


def _read(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RevkitError(f"{path.parent}: no {path.name} ({what}); is it a finished run folder?") from None
    except UnicodeDecodeError as exc:
        raise RevkitError(f"{path}: cannot be read: byte {exc.start} is not UTF-8 ({what})") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RevkitError(f"{path}: cannot be read ({exc})") from exc


def describe_flow(layers: Iterable[dict[str, Any]]) -> tuple[str, int]:
    """The model label and K of a posterior flow given as its TOML layer tables."""
    names: list[str] = []
    steps = 0
    for layer in layers:
        name = str(layer.get("block", "?"))
        if name in NOT_STEPS:
            continue
        steps += int(layer.get("repeat", 1))
        label = BLOCK_LABELS.get(name, name)
        if label not in names:
            names.append(label)
    return ("VAE + " + " + ".join(names) if names else "VAE"), steps


def read_row(run_dir: str | Path) -> Row:
    """The table row of one run folder."""
    folder = Path(run_dir)
    spec = _read(folder / "spec.toml", "the spec as run")
    model = spec.get("model", {})
    if model.get("kind") != "vae":
        raise RevkitError(f"{folder}: not a VAE run (its spec.toml has no model.kind = 'vae'); compare tabulates VAEs")
    metrics = _read(folder / "metrics.json", "the final evaluation")
    missing = [k for k in ("test_elbo", "test_recon_nll", "test_nll_iwae") if k not in metrics]
    if missing:
        raise RevkitError(f"{folder}: metrics.json lacks {', '.join(missing)}; was it evaluated with objective 'elbo'?")
    label, k = describe_flow(model.get("vae", {}).get("posterior_flow", []))
    default_l = ElboParams.model_fields["iwae_samples"].default
    return Row(run=folder.name, model=label, steps_k=k, elbo=float(metrics["test_elbo"]),
               recon_nll=float(metrics["test_recon_nll"]), nll_iwae=float(metrics["test_nll_iwae"]),
               iwae_samples=int(spec.get("objective", {}).get("iwae_samples", default_l)),
               train_steps=int(metrics.get("steps", 0)))


def render_text(rows: Sequence[Row]) -> str:
    """An aligned plain-text table (numbers right-aligned)."""
    table = [HEADERS, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    left = {0, 1}

    def fmt(line: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(HEADERS), rule, *(fmt(r.cells()) for r in rows)]) + "\n"


def _markdown_line(cells: Iterable[str]) -> str:
    r"""One table line; a ``|`` inside a cell (the header ``−log p(x|z)``, a run name) is written ``\|``
    so that it does not end the cell."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_markdown(rows: Sequence[Row]) -> str:
    """A Markdown table (numeric columns right-aligned)."""
    align = ["---", "---"] + ["---:"] * (len(HEADERS) - 2)
    lines = [_markdown_line(HEADERS), "| " + " | ".join(align) + " |"]
    lines += [_markdown_line(r.cells()) for r in rows]
    return "\n".join(lines) + "\n"


def compare(run_dirs: Sequence[str | Path], markdown: bool = False) -> str:
    """The table of the given run folders, in the order given."""
    if not run_dirs:
        raise RevkitError("compare needs at least one run folder")
    rows = [read_row(d) for d in run_dirs]
    return render_markdown(rows) if markdown else render_text(rows)

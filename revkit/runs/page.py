"""``report.html``: one self-contained page of a run, and a comparison page of several runs.

A page opens from disk in any browser with no server and no network: its CSS is inline, it has no
script, and every picture is a PNG inside the page (``data:`` URIs). Curves and charts are drawn with
matplotlib (:mod:`revkit.eval.curve`: a panel per quantity, so scales never flatten each other).

A run's page (:func:`write_run_page`, written into every run folder after its final evaluation) shows
the headline metrics, the training curves, the pictures of the final evaluation (samples, reconstructions,
interpolations, dimension sweeps, density), what the objective adds (the per-class prior stds and how many
dimensions stay active, the fixed-point iteration histogram of iterative inverses, a VAE's bounds) and the
spec as run. A comparison page (:func:`write_comparison_page`, ``revkit report RUN_DIR…``) puts runs of any
kinds side by side: curves overlaid, metrics in a table with a column per run, pictures in columns.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from revkit.errors import RevkitError
from revkit.eval.curve import write_curves
from revkit.runs.folder import RunFolder
from revkit.runtime.files import atomic_write
from revkit.train.metrics import read_metrics

#: pictures in the order a page shows them (others in the folder follow by name).
PICTURE_ORDER = ("samples", "reconstructions", "interpolations", "dimension_sweeps", "density", "prior_stds")
#: what a picture is, under it.
CAPTIONS = {
    "samples": "samples from the model",
    "reconstructions": "test images over their reconstructions",
    "interpolations": "interpolations between test images in latent space",
    "dimension_sweeps": "per class, the latent dimensions of largest prior std swept over mean ± 2·std",
    "density": "model density beside the data",
    "prior_stds": "the prior's stds per class, sorted",
}
#: metrics.json keys that are bookkeeping rather than results.
BUDGET = ("steps", "steps_planned", "stopped", "train_seconds", "wall_clock_s", "device", "processes", "parameters",
          "test_samples", "skipped_updates")
#: words that mark a metric as one of a VAE's bounds.
BOUND_WORDS = ("elbo", "iwae", "bound", "kl")

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5rem; color: #1d2330; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #dde2ea;
padding-bottom: 0.2rem; margin-top: 2rem; }
.sub { color: #5a6475; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.card { border: 1px solid #dde2ea; border-radius: 6px; padding: 0.6rem 0.9rem; min-width: 9rem; background: #f7f9fc; }
.card .v { font-size: 1.3rem; font-weight: 600; } .card .k { font-size: 0.8rem; color: #5a6475; }
.card.main { border-color: #3b6fd8; background: #eef3fd; }
table { border-collapse: collapse; font-size: 0.9rem; } td, th { border: 1px solid #dde2ea; padding: 0.25rem 0.6rem;
text-align: left; vertical-align: top; } th { background: #f2f4f8; } td.num { text-align: right;
font-variant-numeric: tabular-nums; }
figure { margin: 0.5rem 0 1rem 0; } figcaption { font-size: 0.85rem; color: #5a6475; }
img { max-width: 100%; height: auto; image-rendering: pixelated; border: 1px solid #eef0f4; }
img.chart { image-rendering: auto; } img.pic { min-width: min(100%, 440px); }
pre { background: #f7f9fc; border: 1px solid #dde2ea; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }
.muted { color: #8a93a3; }
"""


@dataclass
class RunView:
    """What a page shows of one run folder."""

    path: Path
    name: str
    spec_text: str
    metrics: dict[str, Any]
    records: list[dict[str, Any]]
    pictures: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path | str) -> RunView:
        """Read a run folder (a run still training, or one that never finished, reads as far as it got).

        Raises:
            RevkitError: when ``path`` is not a run folder (no ``spec.toml``).
        """
        folder = RunFolder(Path(path))
        if not folder.path.is_dir():
            raise RevkitError(f"no such run folder: {folder.path}")
        if not folder.spec_file.is_file():
            raise RevkitError(f"{folder.path} is not a run folder: it has no spec.toml")
        try:
            spec_text = folder.spec_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RevkitError(f"{folder.spec_file}: cannot be read: byte {exc.start} is not UTF-8 (the spec as run)") \
                from None
        except OSError as exc:
            raise RevkitError(f"{folder.spec_file}: cannot be read ({exc.strerror or exc})") from None
        records = read_metrics(folder.metrics_log) if folder.metrics_log.is_file() else []
        pictures = {p.stem: p for p in folder.pictures() if p.stem != "training_curve"}
        return cls(folder.path, folder.path.name, spec_text, folder.read_metrics() or {}, records, pictures)

    @property
    def main_metric(self) -> str | None:
        main = self.metrics.get("main_metric")
        return main if isinstance(main, str) else None

    def ordered_pictures(self) -> list[str]:
        first = [n for n in PICTURE_ORDER if n in self.pictures]
        return first + sorted(n for n in self.pictures if n not in PICTURE_ORDER)


# -- pieces --------------------------------------------------------------------------------------
def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str, chart: bool = False) -> str:
    css = ' class="chart"' if chart else ' class="pic"'
    return f'<img{css} src="{data_uri(png)}" alt="{html.escape(alt)}">'


def _figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def curves_png(runs: Mapping[str, Sequence[dict[str, Any]]]) -> bytes:
    """The training curves of ``runs`` (label → records), a panel per quantity."""
    buffer = io.BytesIO()
    write_curves(runs, buffer)
    return buffer.getvalue()


def iterations_png(histogram: Mapping[str, int]) -> bytes:
    """A bar chart of the fixed-point iteration counts of iterative inverses (``metrics.json``'s ``inverse``)."""
    fig = Figure(figsize=(5.5, 2.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    counts = sorted((int(k), int(v)) for k, v in histogram.items())
    ax.bar([k for k, _ in counts], [v for _, v in counts], color="C0")
    ax.set_xlabel("fixed-point iterations", fontsize="small")
    ax.set_ylabel("inversions (block × image)", fontsize="small")
    ax.tick_params(labelsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _figure_png(fig)


def active_dims_png(active: Sequence[int] | int) -> bytes:
    """Active latent dimensions per class (a prior that lets dimensions collapse)."""
    values = [int(active)] if isinstance(active, (int, float)) else [int(a) for a in active]
    fig = Figure(figsize=(5.5, 2.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(values)), values, color="C2")
    ax.set_xticks(range(len(values)))
    ax.set_xlabel("class", fontsize="small")
    ax.set_ylabel("active dimensions", fontsize="small")
    ax.tick_params(labelsize="small")
    fig.tight_layout()
    return _figure_png(fig)


def fmt(value: Any) -> str:
    """A metric as text: 4 significant digits for floats, thousands separators for large integers."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def headline(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The scalar results of ``metrics.json`` in reading order: the main metric, the test metrics, the rest
    (bookkeeping last)."""
    scalar = {k: v for k, v in metrics.items()
              if isinstance(v, (int, float, str)) and k != "main_metric" and not isinstance(v, bool)}
    main = metrics.get("main_metric")
    first = [main] if isinstance(main, str) and main in scalar else []
    tests = sorted(k for k in scalar if k.startswith("test_") and k not in first)
    rest = sorted(k for k in scalar if k not in first and k not in tests and k not in BUDGET)
    budget = [k for k in BUDGET if k in scalar]
    return [(k, scalar[k]) for k in [*first, *tests, *rest, *budget]]


def _metrics_table(rows: Iterable[tuple[str, Sequence[Any]]], headers: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for key, values in rows:
        cells = "".join(
            f'<td class="num">{html.escape(fmt(v))}</td>' if v is not None else '<td class="muted">—</td>'
            for v in values)
        body.append(f"<tr><th>{html.escape(key)}</th>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"


def _page(title: str, body: str) -> str:
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}"
            f"<p class=\"muted\">written by revkit on {stamp}</p></body></html>\n")


def _summary_line(run: RunView) -> str:
    m = run.metrics
    parts = []
    if "steps" in m:
        parts.append(f"{m['steps']} steps" + (f" ({m['stopped']})" if m.get("stopped") not in (None, "completed")
                                               else ""))
    if isinstance(m.get("train_seconds"), (int, float)):
        parts.append(f"{m['train_seconds']:.0f} s of training")
    if "device" in m:
        parts.append(f"on {m['device']}")
    if isinstance(m.get("parameters"), int):
        parts.append(f"{m['parameters']:,} parameters")
    if not m:
        parts.append("no final evaluation yet (metrics.json is missing)")
    return ", ".join(parts)


def _objective_section(run: RunView) -> str:
    """What the objective and the model add: VAE bounds, active dimensions, prior stds, fixed-point iterations."""
    m = run.metrics
    blocks = []
    bounds = [(k, v) for k, v in headline(m) if k.startswith("test_") and any(w in k for w in BOUND_WORDS)]
    if bounds:
        rows = "".join(f'<tr><th>{html.escape(k)}</th><td class="num">{html.escape(fmt(v))}</td></tr>'
                       for k, v in bounds)
        blocks.append(f"<div><h3>bounds on the log-likelihood</h3><table>{rows}</table></div>")
    active = m.get("active_dims_per_class")
    if isinstance(active, list) and len(active) > 1:  # one number (an unconditional prior) is in the table
        blocks.append(f"<figure>{_img(active_dims_png(active), 'active dimensions per class', chart=True)}"
                      "<figcaption>latent dimensions the prior keeps active, per class</figcaption></figure>")
    if "prior_stds" in run.pictures:
        png = run.pictures["prior_stds"].read_bytes()
        blocks.append(f"<figure>{_img(png, 'prior stds')}<figcaption>{CAPTIONS['prior_stds']}</figcaption></figure>")
    inverse = m.get("inverse")
    if isinstance(inverse, dict) and inverse.get("iterations_histogram"):
        caption = (f"fixed-point iterations of the iterative inverses on one test batch: mean "
                   f"{fmt(inverse.get('mean_iterations'))}, max {fmt(inverse.get('max_iterations'))}, "
                   f"unconverged {fmt(inverse.get('unconverged', 0))}, max error {fmt(inverse.get('max_error'))}")
        blocks.append(f"<figure>{_img(iterations_png(inverse['iterations_histogram']), 'fixed-point iterations', True)}"
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if not blocks:
        return ""
    return f"<h2>What the objective adds</h2><div class=\"grid\">{''.join(blocks)}</div>"


# -- pages ---------------------------------------------------------------------------------------
def run_page(run: RunView) -> str:
    """The HTML of one run's page."""
    m = run.metrics
    main = run.main_metric
    cards = []
    for key, value in headline(m)[:8]:
        if key in BUDGET:
            continue
        css = "card main" if key == main else "card"
        cards.append(f'<div class="{css}"><div class="v">{html.escape(fmt(value))}</div>'
                     f'<div class="k">{html.escape(key)}</div></div>')
    parts = [f"<h1>{html.escape(run.name)}</h1>", f'<p class="sub">{html.escape(_summary_line(run))}</p>']
    if cards:
        parts.append(f"<div class=\"cards\">{''.join(cards)}</div>")
    parts.append("<h2>Training curves</h2>")
    if run.records:
        parts.append(f"<figure>{_img(curves_png({'': run.records}), 'training curves', chart=True)}</figure>")
    else:
        parts.append('<p class="muted">nothing logged yet</p>')
    figures = [n for n in run.ordered_pictures() if n != "prior_stds"]
    if figures:
        parts.append("<h2>Pictures</h2>")
        for name in figures:
            caption = CAPTIONS.get(name, name)
            parts.append(f"<figure>{_img(run.pictures[name].read_bytes(), name)}"
                         f"<figcaption>{html.escape(name)}: {html.escape(caption)}</figcaption></figure>")
    parts.append(_objective_section(run))
    rows = [(k, [v]) for k, v in headline(m)]
    if rows:
        parts.append("<h2>Metrics</h2>" + _metrics_table(rows, ["value"]))
    skipped = {**(m.get("pictures_skipped") or {}), **(m.get("scores_unavailable") or {})}
    if skipped:
        items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in skipped.items())
        parts.append(f"<h3>Not drawn or not computed</h3><ul>{items}</ul>")
    parts.append(f"<h2>Spec</h2><pre>{html.escape(run.spec_text)}</pre>")
    return _page(f"revkit run {run.name}", "".join(parts))


def comparison_page(runs: Sequence[RunView]) -> str:
    """The HTML of a page comparing ``runs`` (any kinds): curves overlaid, metrics side by side, pictures in
    columns."""
    labels = _labels(runs)
    parts = [f"<h1>{len(runs)} runs compared</h1>",
             "<p class=\"sub\">" + ", ".join(html.escape(f"{label}: {_summary_line(r)}")
                                              for label, r in zip(labels, runs, strict=True)) + "</p>"]
    keys: list[str] = []
    for run in runs:
        for key, _ in headline(run.metrics):
            if key not in keys:
                keys.append(key)
    mains = {r.main_metric for r in runs if r.main_metric}
    keys = [k for k in keys if k in mains] + [k for k in keys if k not in mains]
    parts.append("<h2>Metrics</h2>")
    parts.append(_metrics_table([(k, [r.metrics.get(k) for r in runs]) for k in keys], labels))
    parts.append("<h2>Training curves</h2>")
    with_records = {label: r.records for label, r in zip(labels, runs, strict=True) if r.records}
    if with_records:
        parts.append(f"<figure>{_img(curves_png(with_records), 'training curves overlaid', chart=True)}</figure>")
    names: list[str] = []
    for run in runs:
        names += [n for n in run.ordered_pictures() if n not in names]
    if names:
        parts.append("<h2>Pictures</h2><table><tr><th></th>"
                     + "".join(f"<th>{html.escape(label)}</th>" for label in labels) + "</tr>")
        for name in names:
            cells = "".join(f"<td>{_img(r.pictures[name].read_bytes(), f'{label} {name}')}</td>"
                            if name in r.pictures else '<td class="muted">—</td>'
                            for label, r in zip(labels, runs, strict=True))
            parts.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
        parts.append("</table>")
    parts.append("<h2>Specs</h2>")
    for label, run in zip(labels, runs, strict=True):
        parts.append(f"<details><summary>{html.escape(label)} ({html.escape(str(run.path))})</summary>"
                     f"<pre>{html.escape(run.spec_text)}</pre></details>")
    return _page(f"revkit: {len(runs)} runs compared", "".join(parts))


def _labels(runs: Sequence[RunView]) -> list[str]:
    """Column labels: folder names, with the parent folder added where two names are equal."""
    names = [r.name for r in runs]
    return [f"{r.path.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs]


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    except OSError as exc:
        raise RevkitError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
    return path


def write_run_page(run_dir: Path | str, out: Path | str | None = None) -> Path:
    """Write the page of the run in ``run_dir`` to ``out`` (default: ``report.html`` in the run folder)."""
    run = RunView.read(run_dir)
    return _write(Path(out) if out is not None else RunFolder(run.path).report_file, run_page(run))


def write_comparison_page(run_dirs: Sequence[Path | str], out: Path | str) -> Path:
    """Write a page comparing the runs in ``run_dirs`` to ``out``.

    Raises:
        RevkitError: naming a folder that is not a run folder.
    """
    return _write(Path(out), comparison_page([RunView.read(d) for d in run_dirs]))

"""``revkit translate``: a grid of test inputs of both domains and their translations, from a run of two aligned flows."""

from __future__ import annotations

from pathlib import Path

import torch

from revkit.errors import RevkitError
from revkit.eval.labelled_grid import write_labelled_rows
from revkit.eval.samples import check_grid_memory
from revkit.runs.load import load_run
from revkit.runs.sample import check_out
from revkit.runtime.device import module_device
from revkit.runtime.seeding import seed_everything


def translate_run(run_dir: Path, n: int = 16, out: Path | None = None, device: str = "auto", seed: int = 0) -> Path:
    """Write four labelled rows — ``n`` test images of A, their translations A → B, ``n`` test images of B, their
    translations B → A — as a PNG; returns its path (default ``run_dir/translations-step<N>.png``).

    Raises:
        RevkitError: when the run's model does not translate (not of kind ``aligned_flows``) or its data
            source has no second domain.
    """
    if out is not None:
        check_out(Path(out))
    run = load_run(run_dir, device)
    model = run.model
    if not all(callable(getattr(model, m, None)) for m in ("a_to_b", "b_to_a")):
        raise RevkitError(f"{run.folder.path}: its model ({run.spec.model.kind}) does not translate between domains; "
                          "translate needs a run of model.kind = 'aligned_flows'")
    # before a test image is read: four rows of n images (both domains and their translations)
    check_grid_memory(4 * n, model.input_shape, "-n", f"a picture of 4 rows of {n:,} images")
    seed_everything(seed)
    _, test, _ = run.loaders()
    x_a, x_b = _first(test, n)
    where = module_device(model)
    with torch.no_grad():
        x_a, x_b = x_a.to(where), x_b.to(where)
        ab, ba = model.a_to_b(x_a), model.b_to_a(x_b)  # type: ignore[operator]
    rows = [t.clamp(0, 1).cpu() for t in (x_a, ab, x_b, ba)]
    path = out if out is not None else run.folder.picture(f"translations-step{run.step:06d}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_labelled_rows(rows, ["A", "A to B", "B", "B to A"], path,
                                   title=f"translations, step {run.step}")
    except OSError as exc:
        raise RevkitError(f"{path}: cannot write the translations ({exc.strerror or exc})") from exc


def _first(loader: object, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of each domain of a loader of ``(x_A, y_A, x_B, y_B)`` batches."""
    xs_a: list[torch.Tensor] = []
    xs_b: list[torch.Tensor] = []
    count = 0
    for batch in loader:  # type: ignore[attr-defined]
        if len(batch) < 4:
            raise RevkitError("translate needs a data source with two domains (batches x_A, y_A, x_B, y_B), "
                              "such as 'unpaired_mnist'")
        xs_a.append(batch[0])
        xs_b.append(batch[2])
        count += batch[0].shape[0]
        if count >= n:
            break
    return torch.cat(xs_a)[:n], torch.cat(xs_b)[:n]

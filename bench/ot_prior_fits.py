"""Which prior gives a trained class-conditional run varied samples? Gaussians of several covariance forms,
fitted to the run's own training encodings, scored on the same samples' classifier scores.

    python bench/ot_prior_fits.py RUN_DIR [--images 60000] [--samples 2000] [--ranks 8 32 128]

For every class ``c`` the training images of that class are encoded with the run's network, and their mean
:math:`\\mu_c` and covariance :math:`S_c` are computed (float64). Samples are then drawn, decoded and scored
(``sample_class_accuracy``, ``fid_mnist_classifier``, ``spread_ratio``, ``precision``, ``recall``, as every
class-conditional run writes them) for

* the run's own prior (what ``samples.png`` shows);
* the diagonal Gaussian :math:`\\mathcal N(\\mu_c, \\operatorname{diag} S_c)` — the best a diagonal prior can do;
* the full Gaussian :math:`\\mathcal N(\\mu_c, S_c)`;
* rank ``k`` plus the residual diagonal, and rank ``k`` alone, for each ``--ranks`` (what
  ``prior.covariance_rank`` fits after training, with ``prior.residual`` true and false).

It prints a Markdown table and the share of each class's variance in its top 10 and 50 principal directions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from revkit import load_run  # noqa: E402
from revkit.eval.classifier_scores import mnist_classifier_scores, split_tensors  # noqa: E402
from revkit.eval.score_samples import draw_score_samples  # noqa: E402

SCORES = ("sample_class_accuracy", "fid_mnist_classifier", "spread_ratio", "precision", "recall")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=int, default=60000, help="training images encoded (default all)")
    parser.add_argument("--samples", type=int, default=2000, help="samples scored per prior (default 2000)")
    parser.add_argument("--ranks", type=int, nargs="*", default=[8, 32, 128])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run = load_run(args.run, device="cpu")
    model, prior = run.model.eval(), run.model.prior
    classes = prior.classes
    x, y = split_tensors(run.source, "train")
    x, y = x[: args.images], y[: args.images]
    x = x.float().reshape(len(x), 1, 28, 28) / (255.0 if x.dtype == torch.uint8 else 1.0)
    pad = (model.input_shape[-1] - 28) // 2
    x = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    started = time.monotonic()
    with torch.no_grad():
        z = torch.cat([model.encode(x[i:i + 1000], y[i:i + 1000]).reshape(len(x[i:i + 1000]), -1)
                       for i in range(0, len(x), 1000)]).double()
    print(f"{args.run}: {len(x)} training images encoded in {time.monotonic() - started:.0f} s; "
          f"latent {z.shape[1]}\n")
    fits = {}
    print("| class | images | top-10 share | top-50 share | encodings' std (mean) | prior std (mean) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    prior_stds = prior.component_stds().detach().reshape(classes, -1).double()
    for c in range(classes):
        members = z[y == c]
        covariance = torch.cov(members.T)
        values, vectors = torch.linalg.eigh(covariance)
        values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)
        fits[c] = (members.mean(0), covariance, values, vectors)
        print(f"| {c} | {len(members)} | {float(values[:10].sum() / values.sum()):.3f} | "
              f"{float(values[:50].sum() / values.sum()):.3f} | {float(members.std(0).mean()):.4f} | "
              f"{float(prior_stds[c].mean()):.4f} |")

    labels = torch.arange(args.samples) % classes
    generator = torch.Generator().manual_seed(args.seed)
    eps = torch.randn(args.samples, z.shape[1], dtype=torch.float64, generator=generator)
    coefficients = torch.randn(args.samples, z.shape[1], dtype=torch.float64, generator=generator)

    def draw(form: str, k: int = 0) -> torch.Tensor:
        out = torch.empty(args.samples, z.shape[1], dtype=torch.float64)
        for c in range(classes):
            mean, covariance, values, vectors = fits[c]
            mine = labels == c
            if form == "diagonal":
                out[mine] = mean + covariance.diagonal().sqrt() * eps[mine]
            elif form == "full":
                scale = vectors * values.sqrt()
                out[mine] = mean + coefficients[mine] @ scale.T
            else:
                factor = vectors[:, :k] * values[:k].sqrt()
                sample = mean + coefficients[mine][:, :k] @ factor.T
                if form == "rank+residual":
                    residual = (covariance.diagonal() - factor.pow(2).sum(1)).clamp_min(0).sqrt()
                    sample = sample + residual * eps[mine]
                out[mine] = sample
        return out

    def scores(images: torch.Tensor) -> dict[str, float]:
        return mnist_classifier_scores(images, labels, run.source, log=lambda *_: None).values

    def decoded(latents: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([model.decode(latents[i:i + 500].float().reshape(-1, *prior.shape), labels[i:i + 500])
                              for i in range(0, args.samples, 500)]).clamp(0, 1)

    torch.manual_seed(args.seed)
    rows = [("the run's prior", scores(draw_score_samples(model, args.samples, 1.0)[0]))]
    rows.append(("diagonal Gaussian of the encodings", scores(decoded(draw("diagonal")))))
    rows.append(("full-covariance Gaussian", scores(decoded(draw("full")))))
    for k in args.ranks:
        rows.append((f"rank {k} + residual diagonal", scores(decoded(draw("rank+residual", k)))))
        rows.append((f"rank {k} alone", scores(decoded(draw("rank", k)))))
    print(f"\n{args.samples} samples at T = 1 per prior\n")
    print("| prior | " + " | ".join(SCORES) + " |")
    print("| --- |" + " ---: |" * len(SCORES))
    for name, values in rows:
        print(f"| {name} | " + " | ".join(f"{values[k]:.3f}" if k != "fid_mnist_classifier" else f"{values[k]:.1f}"
                                          for k in SCORES) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

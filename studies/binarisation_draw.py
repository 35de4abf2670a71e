"""How much a multimodal digits run's log p(image | label) depends on the random draw that binarised its test
images: each run of a sweep (`vae-run -m experiment=multimodal_digits ...`) scored by the final evaluation's
estimator on its own test images and on the same grey images binarised by another draw (numpy's RandomState(seed);
the removed studies/multimodal_digits.py used 778, vae-run uses one RandomState(777) stream, validation first).

    python studies/binarisation_draw.py <sweep dir> [--seed 778] [--k 1000]

Prints, per run, log p(image | label) on both draws, their paired difference and its standard error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import vae_runner
from vae_runner.data import Split, binarize_once
from vae_runner.data.digits import load_digits
from vae_runner.data.modalities import blocks, hide
from vae_runner.evaluation.metrics import log_likelihood


def log_p_image_given_label(run, x: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) log p(image, label) - log p(label), each by importance sampling, as evaluation/cross_modal.py does."""
    cfg, layout = run.config, run.data.modalities
    score = lambda rows: log_likelihood(run.model, Split(rows), k, cfg.evaluation.chunk_rows, cfg.seed)  # noqa: E731
    return score(x) - score(hide(x, layout, ["image"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--seed", type=int, default=778, help="the RandomState seed of the other binarisation")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test example")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run_dir in sorted(p.parent for p in args.sweep.glob("*/metrics.json")):
        run = vae_runner.load(run_dir)
        cfg = run.config.dataset
        grey = load_digits(cfg.val_fraction, cfg.test_fraction, cfg.split_seed).test
        ours = run.data.test.x if run.data.test.truth is None else run.data.test.truth
        other = ours.clone()
        _, cols, _ = blocks(run.data.modalities)[0]
        other[:, cols] = binarize_once(grey, args.seed).x.flatten(1)
        a, b = (log_p_image_given_label(run, x, args.k) for x in (ours, other))
        diff = b - a
        print(
            f"{run_dir.name}: own draw {a.mean():.3f}, RandomState({args.seed}) draw {b.mean():.3f}, "
            f"difference {diff.mean():+.3f} (s.e. {diff.std() / len(diff) ** 0.5:.3f}); "
            f"pixels alike {(ours[:, cols] == other[:, cols]).float().mean():.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

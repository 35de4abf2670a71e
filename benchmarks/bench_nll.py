"""Speed of the importance-sampled test log-likelihood against pythae's `get_nll` method, on one model.

    python benchmarks/bench_nll.py                       # Fashion-MNIST, MLP 784-512-512-32, K = 1000, 1000 images
    python benchmarks/bench_nll.py --full                # ... and our estimator on all 10k test images
    python benchmarks/bench_nll.py --json bench_nll.json

The model is trained for `--epochs` epochs first (Bernoulli likelihood, dynamic binarisation), so the numbers are
those of a real model. The baseline re-implements the algorithm of pythae's `VAE.get_nll` (benchmark_VAE): one test
image at a time, replicated `batch_size` (100) times, re-encoded for every replica, K / batch_size forwards per image,
one host sync per image. Ours (`vae_runner.evaluation.metrics.log_likelihood`) encodes each image once and decodes
`chunk_rows` (image, sample) rows per forward. Both see the same images, model and K; each timing is the median of
`--repeats`, alternating.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vae_runner.build import build_model, load_data, setup
from vae_runner.config.compose import compose_config
from vae_runner.data import Split
from vae_runner.evaluation.metrics import evaluate_split, log_likelihood
from vae_runner.training.trainer import Trainer


@torch.no_grad()
def pythae_style_log_likelihood(model, split: Split, k: int, batch_size: int = 100) -> torch.Tensor:
    """pythae's get_nll algorithm (Bernoulli decoder, N(0, I) prior), re-implemented for our model's networks."""
    n_batches, per_batch = (1, k) if k <= batch_size else (k // batch_size, batch_size)
    out = []
    for i in range(len(split)):
        x_rep = split.floats(slice(i, i + 1)).repeat(per_batch, *[1] * (split.x.dim() - 1))
        log_w = []
        for _ in range(n_batches):
            mu, log_var = model.encode(x_rep).chunk(2, dim=-1)  # the same image encoded per_batch times
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
            log_q = -0.5 * (log_var + (z - mu) ** 2 / torch.exp(log_var)).sum(-1)
            log_p = -0.5 * (z**2).sum(-1)  # pythae drops the shared log(2 pi) terms of q and p
            recon = torch.sigmoid(model.decoder(z))
            log_px = -F.binary_cross_entropy(recon.flatten(1), x_rep.flatten(1), reduction="none").sum(-1)
            log_w.append(log_px + log_p - log_q)
        log_w = torch.cat(log_w)
        out.append((torch.logsumexp(log_w, 0) - math.log(len(log_w))).item())  # a host sync per image
    return torch.tensor(out)


def real_pythae_log_likelihood(model, split: Split, k: int, batch_size: int = 100) -> torch.Tensor | None:
    """pythae's own `VAE.get_nll` on our model's networks (wrapped in pythae's encoder/decoder classes), when the
    pythae package is installed (`pip install pythae`; not a dependency of vae-runner). It returns the mean only."""
    try:
        from pythae.models import VAE as PythaeVAE
        from pythae.models import VAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
    except ImportError:
        return None

    class Encoder(BaseEncoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            mu, log_var = self.net(x)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    config = VAEConfig(input_dim=tuple(split.x.shape[1:]), latent_dim=model.prior.latent_dim, reconstruction_loss="bce")
    pythae_model = PythaeVAE(config, encoder=Encoder(model.encoder), decoder=Decoder(model.decoder)).eval()
    with torch.no_grad():
        return torch.tensor([pythae_model.get_nll(split.floats(), n_samples=k, batch_size=batch_size)])


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also time our estimator on the whole test set")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    overrides = [
        "dataset=fashion_mnist",
        "architecture.hidden=[512,512]",
        "latent_dim=32",
        "likelihood=bernoulli",
        "prior=gaussian",
        f"trainer.epochs={args.epochs}",
        f"trainer.num_threads={args.threads}",
        "trainer.device=cpu",
        "logger.progress_bar=false",
        "logger.tensorboard=false",
    ]
    cfg = compose_config(overrides)
    device = setup(cfg)
    data = load_data(cfg, device)
    model = build_model(cfg, data, device)
    from hydra.utils import instantiate

    opt = torch.optim.Adam(model.parameters(), lr=cfg.trainer.lr)

    class NoLog:
        def scalars(self, *a): ...
        def image(self, *a, **k): ...
        def flush(self): ...

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        objective = instantiate(cfg.objective)
        validation = lambda: evaluate_split(model, objective, data.val, cfg.trainer.eval_batch_size)  # noqa: E731
        Trainer(
            model, objective, opt, data, cfg.trainer, NoLog(), Path(tmp), {"config": {}}, validation, progress_bar=False
        ).fit()
    model.eval()
    subset = Split(data.test.x[: args.images])

    times = {"ours": [], "ours_bf16": [], "pythae_style": [], "pythae": []}
    methods = {
        "ours": lambda: log_likelihood(model, subset, k=args.k, chunk_rows=args.chunk_rows, seed=0),
        "ours_bf16": lambda: log_likelihood(
            model, subset, k=args.k, chunk_rows=args.chunk_rows, seed=0, precision="bf16"
        ),
        "pythae_style": lambda: pythae_style_log_likelihood(model, subset, k=args.k),
        "pythae": lambda: real_pythae_log_likelihood(model, subset, k=args.k),
    }
    means, values_of = {}, {}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            t, values = timed(fn)
            if values is None:
                continue
            times[name].append(t)
            means[name], values_of[name] = values.mean().item(), values
            print(f"{name}: {t:.2f} s, mean log p(x) {means[name]:.3f}", flush=True)
    result = {
        "machine": platform.machine(),
        "threads": args.threads,
        "k": args.k,
        "images": args.images,
        "model": "MLP 784-512-512-32, Bernoulli",
        "chunk_rows": args.chunk_rows,
        "mean_log_likelihood": means,
    }
    result["bf16_max_abs_diff_per_image"] = (values_of["ours"] - values_of["ours_bf16"]).abs().max().item()
    for name, ts in times.items():
        if ts:
            result[f"{name}_s"] = statistics.median(ts)
            result[f"speedup_vs_{name}"] = statistics.median(ts) / statistics.median(times["ours"])
    if args.full:
        for precision in ("fp32", "bf16"):
            t, full = timed(
                lambda precision=precision: log_likelihood(
                    model, data.test, k=args.k, chunk_rows=args.chunk_rows, seed=0, precision=precision
                )
            )
            result.update(
                {
                    "full_test_images": len(data.test),
                    f"full_test_{precision}_s": t,
                    f"full_test_{precision}_log_likelihood": full.mean().item(),
                    f"full_test_{precision}_stderr": (full.std() / len(full) ** 0.5).item(),
                }
            )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

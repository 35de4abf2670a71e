"""Training speed of the runner against a minimal plain-PyTorch loop, same model, same data, same process.

    python benchmarks/bench.py                                   # the reference: Fashion-MNIST, MLP 784-512-512-32,
                                                              # batch 128, Bernoulli, dynamic binarisation, 10 epochs
    python benchmarks/bench.py --batch-size 512 --impls runner runner-bf16
    python benchmarks/bench.py --arch conv --epochs 2 --impls runner runner-bf16
    python benchmarks/bench.py --epochs 1 --limit-batches 50 --ll-images 100    # a quick smoke run

Implementations (--impls), each with its own model and optimizer, trained epoch by epoch in turn (epoch 1 of each,
then epoch 2 of each, ...), so drifts in machine speed hit all of them alike:
- `runner`: the runner's own Trainer built from the composed config (`vae_runner.run.make_trainer`), fp32, with its
  defaults (subnormals flushed on CPU); `runner-bf16` the same with trainer.precision=bf16; `runner-noflush` with
  trainer.flush_denormal=false; `runner-compile` with trainer.compile=true.
- `plain`: the loop a researcher writes by hand over the same in-memory tensors: randperm, x ~ Bernoulli(pixels),
  nn.Sequential encoder/decoder of the same sizes, BCE-with-logits + closed-form KL, Adam; no subnormal flushing
  (torch's default). `plain-flush`: the same loop with torch.set_flush_denormal(True).
- `pythae`: pythae's own BaseTrainer on the same networks (needs `pip install pythae`; trains on a static
  binarisation: it has no dynamic one).

Images/s is the training images seen divided by the training time summed over epochs (no validation, no start-up).
After training, the test ELBO of every implementation is computed by the same fp32 code (one sample, fixed seed),
and the runner's importance-sampled test log-likelihood estimator (vae_runner.evaluation.metrics.log_likelihood) is
timed in fp32 and bf16 on --ll-images test images with K = --ll-k. --json writes everything, with the machine.

The matmul floor (`floor` in the output): the training step's matrix products alone - for each nn.Linear of the
runner's encoder and decoder, the forward product and the two of the backward pass at --batch-size, timed with
torch.mm on the same threads in fp32 and in bf16 - as GFLOP per step, GFLOP/s and seconds per epoch; each runner
row gets the share of its precision's floor it reaches (floor s/epoch / its median s/epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vae_runner.build import make_trainer
from vae_runner.config.compose import compose_config
from vae_runner.evaluation.metrics import evaluate_split, log_likelihood
from vae_runner.model.layers import mlp  # a plain nn.Sequential of Linear and ReLU
from vae_runner.rng import seeded

RUNNER_VARIANTS = {
    "runner": [],
    "runner-bf16": ["trainer.precision=bf16"],
    "runner-noflush": ["trainer.flush_denormal=false"],
    "runner-compile": ["trainer.compile=true"],
    "runner-bf16-compile": ["trainer.precision=bf16", "trainer.compile=true"],
}
PLAIN_VARIANTS = {"plain": False, "plain-flush": True}  # name -> flush subnormals


def matmul_floor(model: torch.nn.Module, batch: int, n_batches: int, device: torch.device) -> dict:
    """The seconds per epoch of a training step's matrix products alone, fp32 and bf16 (see the docstring)."""
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        pairs = []
        for n_in, n_out in shapes:  # forward x W^T, backward dY W and dY^T x
            sizes = ((batch, n_in), (n_in, n_out), (batch, n_out))
            x, w, dy = (torch.randn(*s, device=device, dtype=dtype) for s in sizes)
            pairs += [(x, w), (dy, w.t()), (dy.t(), x)]
        seconds = step_seconds(pairs, device)
        gflop = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in pairs) / 1e9
        out[name] = {
            "gflop_per_step": round(gflop, 6),
            "gflop_per_s": round(gflop / seconds, 1),
            "epoch_s": round(seconds * n_batches, 6),
        }
    return out


def step_seconds(pairs: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device, repeats: int = 50) -> float:
    """Seconds for one pass of torch.mm over `pairs` (after 5 warm-up passes)."""
    for _ in range(5):
        for a, b in pairs:
            torch.mm(a, b)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        for a, b in pairs:
            torch.mm(a, b)
    sync(device)
    return (time.perf_counter() - t0) / repeats


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Runner:
    """The runner's Trainer, one `train_epoch()` at a time."""

    def __init__(self, name: str, overrides: list[str], run_dir: Path):
        self.cfg = compose_config(overrides + RUNNER_VARIANTS[name])
        self.name, self.flush = name, bool(self.cfg.trainer.flush_denormal)
        self.trainer = make_trainer(self.cfg, run_dir)
        self.data, self.device, self.optimizer = self.trainer.data, self.trainer.device, self.trainer.optimizer
        self.n_batches = len(self.trainer.batches)

    def epoch(self) -> None:
        self.trainer.train_epoch()
        self.trainer.epoch += 1

    def test_elbo(self) -> float:
        return evaluate_split(self.trainer.model, self.trainer.objective, self.data.test, 1000, seed=0)["elbo"]


class Plain:
    """A minimal hand-written training loop over in-memory tensors, MLP and Bernoulli only."""

    def __init__(self, name: str, like: Runner, seed: int):
        cfg, data = like.cfg, like.data
        self.name, self.flush, self.device = name, PLAIN_VARIANTS[name], like.device
        if cfg.architecture.get("hidden") is None or not cfg.likelihood._target_.endswith("Bernoulli"):
            sys.exit("the plain loop is written for architecture=mlp and likelihood=bernoulli")
        sizes = [math.prod(data.shape), *cfg.architecture.hidden]
        torch.manual_seed(seed)  # the runner's model is initialised from the same seed, in the same layer order
        self.enc = mlp(sizes + [2 * cfg.latent_dim]).to(self.device)
        self.dec = mlp([cfg.latent_dim, *reversed(sizes)]).to(self.device)
        self.optimizer = torch.optim.Adam([*self.enc.parameters(), *self.dec.parameters()], lr=cfg.trainer.lr)
        self.x = data.train.floats().flatten(1)  # (N, 784) in [0, 1]
        self.test = data.test.floats().flatten(1)  # binarised once by the runner's protocol
        self.batch_size, self.n_batches = cfg.trainer.batch_size, like.n_batches

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
        return recon, kl

    def epoch(self) -> None:
        perm = torch.randperm(len(self.x), device=self.device)
        for i in range(self.n_batches):
            x = torch.bernoulli(self.x[perm[i * self.batch_size : (i + 1) * self.batch_size]])
            recon, kl = self.terms(x)
            loss = (kl - recon).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        loss.item()  # one host sync at the end of the epoch

    @torch.no_grad()
    def test_elbo(self) -> float:
        total = 0.0
        with seeded(self.device, 0):
            for i in range(0, len(self.test), 1000):
                recon, kl = self.terms(self.test[i : i + 1000])
                total += (recon - kl).sum().item()
        return total / len(self.test)


class Pythae(Plain):
    """pythae's own trainer (benchmark_VAE: `BaseTrainer.train_step`, one epoch per call, DataLoader over its
    dataset) on a pythae `VAE` wrapping the same MLP networks. pythae has no dynamic binarisation, so it trains on
    the training images binarised once (static); `pip install pythae`, not a dependency of vae-runner."""

    def __init__(self, name: str, like: Runner, seed: int, workdir: Path):
        super().__init__("plain", like, seed)
        self.name = name
        try:
            from pythae.data.datasets import BaseDataset
            from pythae.models import VAE, VAEConfig
            from pythae.models.base.base_utils import ModelOutput
            from pythae.models.nn import BaseDecoder, BaseEncoder
            from pythae.trainers import BaseTrainer, BaseTrainerConfig
        except ImportError:
            sys.exit("--impls pythae needs the pythae package: pip install pythae")
        enc, dec, shape = self.enc, self.dec, like.data.shape

        class Encoder(BaseEncoder):
            def __init__(self):
                super().__init__()
                self.net = enc

            def forward(self, x):
                mu, log_var = self.net(x.flatten(1)).chunk(2, dim=-1)
                return ModelOutput(embedding=mu, log_covariance=log_var)

        class Decoder(BaseDecoder):
            def __init__(self):
                super().__init__()
                self.net = dec

            def forward(self, z):
                return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).view(-1, *shape))

        cfg = like.cfg
        model = VAE(
            VAEConfig(input_dim=shape, latent_dim=cfg.latent_dim, reconstruction_loss="bce"),
            encoder=Encoder(),
            decoder=Decoder(),
        )
        n = self.n_batches * self.batch_size
        x = torch.bernoulli(like.data.train.floats()[:n], generator=torch.Generator().manual_seed(seed))
        config = BaseTrainerConfig(
            output_dir=str(workdir),
            per_device_train_batch_size=self.batch_size,
            learning_rate=cfg.trainer.lr,
            num_epochs=cfg.trainer.epochs,
            seed=seed,
            no_cuda=self.device.type != "cuda",
        )
        self.trainer = BaseTrainer(model, BaseDataset(x.cpu(), torch.zeros(len(x))), training_config=config)
        self.trainer.prepare_training()
        self.optimizer, self.epochs_done = self.trainer.optimizer, 0

    def epoch(self) -> None:
        self.epochs_done += 1
        self.trainer.train_step(self.epochs_done)


def subnormals(tensors) -> int:
    """How many float32 values are subnormal (non-zero, below the smallest normal 1.18e-38 in magnitude)."""
    tiny = torch.finfo(torch.float32).tiny
    return sum(int(((t != 0) & (t.abs() < tiny)).sum()) for t in tensors if t.dtype == torch.float32)


def optimizer_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in opt.state.values() for v in state.values() if torch.is_tensor(v) and v.dim() > 0]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--arch", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--hidden", default="512,512", help="MLP widths (the decoder mirrors them)")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit-batches", type=int, help="steps per epoch (quick runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--impls",
        nargs="+",
        default=["plain", "plain-flush", "runner", "runner-bf16"],
        choices=[*PLAIN_VARIANTS, *RUNNER_VARIANTS, "pythae"],
    )
    parser.add_argument(
        "--ll-images", type=int, default=1000, help="test images for the log-likelihood timing (0: skip it)"
    )
    parser.add_argument("--ll-k", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("overrides", nargs="*", help="further vae-run overrides for the runner (after --)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = [
        f"dataset={args.dataset}",
        f"architecture={args.arch}",
        f"latent_dim={args.latent_dim}",
        f"trainer.batch_size={args.batch_size}",
        f"trainer.epochs={args.epochs}",
        f"trainer.num_threads={args.threads}",
        f"trainer.device={args.device}",
        f"seed={args.seed}",
        "logger.progress_bar=false",
        *args.overrides,
    ]
    if args.arch == "mlp":
        overrides.append(f"architecture.hidden=[{args.hidden}]")
    if args.limit_batches:
        overrides.append(f"trainer.limit_batches={args.limit_batches}")

    with tempfile.TemporaryDirectory() as tmp:
        impls, reference = [], None
        for name in args.impls:
            if name in RUNNER_VARIANTS:
                impls.append(Runner(name, overrides, Path(tmp) / name))
                reference = reference or impls[-1]
        if reference is None:  # the plain loop borrows the runner's data
            reference = Runner("runner", overrides, Path(tmp) / "data")
        impls += [Plain(name, reference, args.seed) for name in args.impls if name in PLAIN_VARIANTS]
        if "pythae" in args.impls:
            impls.append(Pythae("pythae", reference, args.seed, Path(tmp) / "pythae"))
        impls.sort(key=lambda impl: args.impls.index(impl.name))
        n_images = min(reference.n_batches * args.batch_size, len(reference.data.train))
        times = {impl.name: [] for impl in impls}
        for epoch in range(args.epochs):
            for impl in impls:
                torch.set_flush_denormal(impl.flush)
                sync(impl.device)
                t0 = time.perf_counter()
                impl.epoch()
                sync(impl.device)
                times[impl.name].append(time.perf_counter() - t0)
            print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        results = {}
        for impl in impls:
            torch.set_flush_denormal(False)  # every model is scored by the same arithmetic
            results[impl.name] = {
                "epoch_s": [round(t, 3) for t in times[impl.name]],
                "images_per_s": round(n_images * args.epochs / sum(times[impl.name]), 1),
                "median_epoch_s": round(statistics.median(times[impl.name]), 3),
                "test_elbo": round(impl.test_elbo(), 3),
                "adam_state_subnormals": subnormals(optimizer_tensors(impl.optimizer)),
            }
        ratios = {}
        for a, b in (
            ("runner", "plain"),
            ("runner", "plain-flush"),
            ("runner-bf16", "runner"),
            ("runner-compile", "runner"),
            ("runner-noflush", "runner"),
            ("plain-flush", "plain"),
            ("runner", "pythae"),
            ("plain", "pythae"),
        ):
            if a in results and b in results:
                ratios[f"{a} / {b}"] = round(results[a]["images_per_s"] / results[b]["images_per_s"], 3)
        floor = matmul_floor(reference.trainer.model, args.batch_size, reference.n_batches, reference.device)
        for name, row in results.items():
            precision = "bf16" if "bf16" in name else "fp32"
            row["share_of_floor"] = round(floor[precision]["epoch_s"] / row["median_epoch_s"], 6)
        ll = {}
        if args.ll_images and any(isinstance(impl, Runner) for impl in impls):
            runner = next(impl for impl in impls if isinstance(impl, Runner))
            torch.set_flush_denormal(runner.flush)
            for precision in ("fp32", "bf16"):
                sync(runner.device)
                t0 = time.perf_counter()
                est = log_likelihood(
                    runner.trainer.model, runner.data.test, k=args.ll_k, limit=args.ll_images, precision=precision
                )
                sync(runner.device)
                seconds = time.perf_counter() - t0
                ll[precision] = {
                    "seconds": round(seconds, 2),
                    "images_per_s": round(len(est) / seconds, 1),
                    "mean_nats": round(est.mean().item(), 3),
                }
            ll["model"], ll["k"], ll["images"] = runner.name, args.ll_k, args.ll_images

    result = {
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "images_per_epoch": n_images,
        "results": results,
        "ratios": ratios,
        "floor": floor,
        "log_likelihood": ll,
    }
    print(json.dumps({k: result[k] for k in ("results", "ratios", "floor", "log_likelihood")}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

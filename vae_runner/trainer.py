"""The training loop: Adam over index batches, running metrics read from the device every `log_every` steps,
validation every `eval_every` epochs with pictures, and `last.pt` / `best.pt` checkpoints after each epoch."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from vae_runner.checkpoint import rng_state, save_checkpoint
from vae_runner.data import TrainBatches
from vae_runner.errors import UserError
from vae_runner.evaluate import evaluate_split
from vae_runner.viz import log_pictures


class Trainer:
    def __init__(self, model, objective, optimizer, data, cfg, logger, run_dir: Path, config: dict,  # config: saved in checkpoints
                 eval_seed: int = 0, n_images: int = 64, progress_bar: bool = True):
        self.model, self.objective, self.optimizer, self.data = model, objective, optimizer, data
        self.cfg, self.logger, self.config = cfg, logger, config
        self.ckpt_dir = run_dir / "checkpoints"
        self.eval_seed, self.n_images, self.progress_bar = eval_seed, n_images, progress_bar
        self.batches = TrainBatches(data.train, cfg.batch_size, dynamic=data.binarize == "dynamic",
                                    limit=cfg.limit_batches)
        self.epoch, self.global_step, self.best_val_elbo, self.best_epoch = 0, 0, -math.inf, 0
        self.epoch_times: list[float] = []  # seconds of training per epoch (no validation), this session

    def load_state(self, state: dict) -> None:
        self.epoch, self.global_step, self.best_val_elbo = state["epoch"], state["global_step"], state["best_val_elbo"]
        self.best_epoch = state.get("best_epoch", self.epoch)

    def fit(self) -> None:
        self.model.train()
        while self.epoch < self.cfg.epochs and not self.patience_exhausted():
            t0 = time.perf_counter()
            self.train_epoch()
            self.epoch_times.append(time.perf_counter() - t0)  # train_epoch ends with a host sync (log_window)
            self.epoch += 1
            is_best = False
            if self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs:
                is_best = self.validate()
            self.checkpoint("last.pt")
            if is_best:
                self.checkpoint("best.pt")
            if self.patience_exhausted():
                logging.getLogger("vae_runner").info("early stopping after epoch %d: no better validation ELBO "
                                                     "for %d epochs", self.epoch, self.cfg.early_stopping)

    def patience_exhausted(self) -> bool:
        return bool(self.cfg.early_stopping) and self.epoch - self.best_epoch >= self.cfg.early_stopping

    def train_epoch(self) -> None:
        bar = tqdm(self.batches, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=not self.progress_bar, dynamic_ncols=True)
        window, n = None, 0  # running sums of the terms, kept on the device between host syncs
        for i, (x, y) in enumerate(bar):
            progress = (self.epoch + i / len(self.batches), self.global_step)  # (epoch, step) for warm-up
            terms = self.objective(self.model, x, y, progress=progress)
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].mean().backward()
            self.optimizer.step()
            self.global_step += 1
            means = torch.stack([t.detach().mean() for t in terms.values()])  # (T,)
            window, n = (means if window is None else window + means), n + 1
            if self.global_step % self.cfg.log_every == 0:
                bar.set_postfix(loss=f"{self.log_window(terms.keys(), window, n, progress)['train/loss']:.2f}")
                window, n = None, 0
        if n:
            self.log_window(terms.keys(), window, n, progress)
        bar.close()

    def log_window(self, names, window, n, progress) -> dict[str, float]:
        values = {f"train/{k}": v / n for k, v in zip(names, window.tolist())}  # one host sync per window
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise UserError(f"Training diverged: {', '.join(bad)} became non-finite by step {self.global_step} "
                            f"(epoch {self.epoch + 1}). Usual causes: a learning rate too high (trainer.lr), a "
                            f"likelihood sigma too small, or data outside the likelihood's range. The last good "
                            f"checkpoint is {self.ckpt_dir / 'last.pt'}.")
        values.update({f"train/{k}": v for k, v in self.objective.scalars(progress).items()})
        self.logger.scalars(values, self.global_step)
        return values

    def validate(self) -> bool:
        metrics = evaluate_split(self.model, self.objective, self.data.val, self.cfg.eval_batch_size,
                                 self.eval_seed)
        if not math.isfinite(metrics["elbo"]):
            raise UserError(f"The validation ELBO is {metrics['elbo']} after epoch {self.epoch}: the model "
                            f"diverged. Lower trainer.lr or check the likelihood settings; the last good "
                            f"checkpoint is {self.ckpt_dir / 'last.pt'}.")
        self.logger.scalars({f"val/{k}": v for k, v in metrics.items()}, self.global_step)
        log_pictures(self.model, self.data, self.logger, self.n_images, self.global_step, self.eval_seed)
        self.logger.flush()
        if metrics["elbo"] > self.best_val_elbo:
            self.best_val_elbo, self.best_epoch = metrics["elbo"], self.epoch
            return True
        return False

    def checkpoint(self, name: str) -> None:
        save_checkpoint(self.ckpt_dir / name, model=self.model.state_dict(),
                        optimizer=self.optimizer.state_dict(), epoch=self.epoch, global_step=self.global_step,
                        best_val_elbo=self.best_val_elbo, best_epoch=self.best_epoch, rng=rng_state(), **self.config)

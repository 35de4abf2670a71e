"""The objective: the model and a batch in, named per-example terms out (each (B,), in nats).

Reported terms are always the true ELBO's (beta = 1): `elbo`, `recon` = E_q log p(x|z) (one sample), `kl` =
KL(q(z|x) || p(z)) (closed form when the prior offers one and `analytic_kl` is on, else the single-sample
Monte-Carlo estimate log q(z|x) - log p(z), as the VampPrior code uses for every prior). `loss` is
what is optimised, and every remedy for posterior collapse is a parameter of this one objective, composing with the
others and with every prior and likelihood:

- beta (Higgins et al. 2017): loss = -(recon - beta * kl);
- KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): the KL weight ramps linearly from `warmup_start` to beta
  over `warmup_epochs` epochs or `warmup_steps` steps (evaluation uses beta); with `warmup_per_epoch` it is constant
  within an epoch, start + (beta - start) * e / warmup_epochs in epoch e = 1, 2, ... (the VampPrior code's schedule);
- free bits (Kingma et al. 2016): a latent dimension whose batch-average KL is below `free_bits` contributes
  `free_bits` nats instead;
- IWAE (Burda et al. 2016): with k > 1 the loss is minus the importance-weighted bound
  log (1/k) sum_j p(x|z_j) p(z_j)^beta' / q(z_j|x)^beta' (beta' the current KL weight); k = 1 is the ELBO exactly;
- `gradient: dreg` (Tucker et al. 2019): the doubly reparameterised gradient of the bound, q's parameters held
  fixed in log q(z|x) so that they learn through z only, each sample's pathwise gradient weighted by the square of
  its normalised importance weight (k = 1: the "sticking the landing" gradient of Roeder et al. 2017); the value is
  the bound's. For a Gaussian, full, low-rank or mixture q and the multimodal joints (IAF refused: its log-density
  at its own draws with the parameters held fixed needs the flow inverted);
- `stratified` (MMVAE, Shi et al. 2019, for a mixture q: posterior=mixture, modalities.joint=moe|mopoe): k draws from
  every component c, each reparameterised, and the bound sum_c w_c(x) log (1/k) sum_j p(x, z_cj) / q(z_cj|x), every
  component's importance-weighted bound weighted by its exact weight (MMVAE's "looser" bound; the weights of
  posterior=mixture learn through w_c). `objective=mmvae` is MMVAE's training objective: k = 30, stratified, DReG.
  Training only: the reported terms are the ELBO's at the stratified draws (sum_c w_c of each component's first
  draw's terms), evaluation's the usual;
- triplet loss (TVAE, Ishfaq et al. 2018): on labelled data, `triplet_weight` * max(0, ||mu_a - mu_p|| -
  ||mu_a - mu_n|| + `triplet_margin`) over triplets drawn from the batch (anchor and positive of one class,
  negative of another), reported as `triplet`;
- disentanglement (latent_penalties.py, training only; evaluation reports the ELBO terms): `tc_weight` x the total
  correlation (beta-TCVAE with its beta = 1 + tc_weight, as disentanglement_lib writes it; `tc_estimator` mws or
  mss), reported as `tc`; `dip` = i | ii, the DIP-VAE regulariser (prior=gaussian only), as `dip`; `mmd_weight` x
  MMD^2(q(z), p(z)) (InfoVAE; with beta = 0 its alpha = 1 form), as `mmd`; `factor_vae_weight` x FactorVAE's
  critic-estimated TC (model/critic.py), as `factor_tc`, plus the critic's own loss, as `critic`; `cycle_epochs` > 0:
  the cyclical KL schedule (Fu et al. 2019) instead of a warm-up;
- `input_dropout` (data with missing entries): in training, the encoder sees each row with a further share of its
  entries hidden, the likelihood scores every observed entry; q(z | part of x) is still a distribution over z, so
  the loss is still a bound on log p(x_obs). It trains the encoder for the imputer's task (infer z from a partial
  row) and regularises small tables.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
import torch.nn.functional as F
from torch import Tensor

from vae_runner.errors import UserError
from vae_runner.latent_penalties import cyclical_weight, dip_penalty, mmd, total_correlation


def warmup_weight(
    beta: float, start: float, epochs: float, steps: int, epoch: float, step: int, per_epoch: bool = False
) -> float:
    """The KL weight after `epoch` (fractional) epochs / `step` steps: linear from `start` to `beta`; per_epoch: the
    value of the epoch being trained, (floor(epoch) + 1) / epochs of the way."""
    if epochs > 0:
        done = math.floor(epoch) + 1 if per_epoch else epoch
        return start + (beta - start) * min(1.0, done / epochs)
    if steps > 0:
        return start + (beta - start) * min(1.0, step / steps)
    return beta


def drop_inputs(x: Tensor, rate: float) -> Tensor:
    """x with each entry hidden (NaN, read as 0 by the encoder of a model that accepts missing entries) with
    probability `rate`: the encoder learns to infer z from part of a row, the likelihood still scores all of it."""
    return x.masked_fill(torch.rand(x.shape, device=x.device) < rate, float("nan"))


def stratified_draws(q, k: int) -> tuple[Tensor, Tensor]:
    """k reparameterised draws from each component of a Gaussian mixture q (posterior=mixture, the multimodal
    mixtures), (k, C, B, D), and the components' log weights (C, B)."""
    if not hasattr(q, "log_w"):  # every posterior has components(); only a mixture has weights
        raise UserError(
            f"objective.stratified draws from each component of a mixture posterior; q(z|x) here is "
            f"{type(q).__name__}. Use posterior=mixture or modalities.joint=moe|mopoe, or objective.stratified=false."
        )
    means, logvars, log_w = q.components()  # (B, C, D), (B, C, D), (B, C)
    eps = torch.randn(k, *means.shape, device=means.device, dtype=means.dtype)
    z = means + torch.exp(0.5 * logvars) * eps  # (k, B, C, D)
    return z.movedim(2, 1), log_w.movedim(-1, 0)


def triplet_loss(mu: Tensor, y: Tensor, margin: float) -> Tensor:
    """(B,) hinge per anchor over one random (positive, negative) pair per anchor from the batch; 0 for anchors
    without a positive or a negative."""
    same = y[:, None] == y[None, :]  # (B, B)
    eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
    pos_mask, neg_mask = (same & ~eye).float(), (~same).float()
    valid = (pos_mask.sum(1) > 0) & (neg_mask.sum(1) > 0)  # (B,)
    pos = torch.multinomial(pos_mask + ~valid[:, None], 1).squeeze(1)  # rows without candidates draw anything
    neg = torch.multinomial(neg_mask + ~valid[:, None], 1).squeeze(1)
    d_pos, d_neg = (mu - mu[pos]).norm(dim=1), (mu - mu[neg]).norm(dim=1)
    return F.relu(d_pos - d_neg + margin) * valid


class Objective:
    def __init__(
        self,
        beta: float,
        k: int,
        warmup_epochs: float,
        warmup_steps: int,
        warmup_start: float,
        free_bits: float,
        triplet_weight: float,
        triplet_margin: float,
        warmup_per_epoch: bool,
        analytic_kl: bool,
        tc_weight: float,
        tc_estimator: str,
        dip: str,
        dip_lambda_od: float,
        dip_lambda_d: float,
        mmd_weight: float,
        factor_vae_weight: float,
        critic_hidden: list[int],
        critic_lr: float,
        cycle_epochs: float,
        cycle_ratio: float,
        input_dropout: float,
        gradient: str,
        stratified: bool,
    ):
        self.beta = float(beta)
        self.k = int(k)
        self.warmup = (float(warmup_start), float(warmup_epochs), int(warmup_steps))
        self.warmup_per_epoch = bool(warmup_per_epoch)
        self.analytic_kl = bool(analytic_kl)
        self.free_bits = float(free_bits)
        self.triplet_weight = float(triplet_weight)
        self.triplet_margin = float(triplet_margin)
        self.tc_weight = float(tc_weight)
        self.tc_estimator = str(tc_estimator)
        self.mmd_weight = float(mmd_weight)
        self.dip = str(dip)
        self.dip_lambdas = (float(dip_lambda_od), float(dip_lambda_d))
        self.factor_vae_weight = float(factor_vae_weight)  # the critic's settings are read by build (model/critic.py)
        self.cycle = (float(cycle_epochs), float(cycle_ratio))
        self.input_dropout = float(input_dropout)
        self.gradient, self.stratified = str(gradient), bool(stratified)
        self.dataset_size: int | None = None  # the training split's size (tc_estimator=mss), set by the run
        if self.cycle[0] > 0 and (warmup_epochs or warmup_steps):
            raise UserError(
                "objective.cycle_epochs (the cyclical KL schedule) and objective.warmup_epochs/warmup_steps both "
                "set: the cycles are the warm-up; set one of them to 0."
            )

    @property
    def penalised(self) -> bool:
        """Whether a batch-level penalty (total correlation, DIP, MMD) is on: terms then depend on the whole batch."""
        return self.tc_weight > 0 or self.dip != "none" or self.mmd_weight > 0 or self.factor_vae_weight > 0

    def kl_weight(self, progress: tuple[float, int] | None) -> float:
        """beta, or its warm-up value at progress = (epoch, step) during training."""
        if progress is None:
            return self.beta
        start, epochs, steps = self.warmup
        if self.cycle[0] > 0:
            return cyclical_weight(self.beta, start, *self.cycle, progress[0])
        return warmup_weight(self.beta, start, epochs, steps, *progress, per_epoch=self.warmup_per_epoch)

    def first_full_weight_epoch(self, steps_per_epoch: int) -> int:
        """The first epoch (1-based) trained at the full KL weight from its end on: 0 without warm-up."""
        _, epochs, steps = self.warmup
        return math.ceil(epochs if epochs > 0 else steps / steps_per_epoch)

    def scalars(self, progress: tuple[float, int]) -> dict[str, float]:
        """Training scalars that are not per-example terms (logged as train/<name>)."""
        return {"beta": self.kl_weight(progress)}

    def __call__(
        self,
        model,
        x: Tensor,
        y: Tensor | None = None,
        progress: tuple[float, int] | None = None,
        noise=None,
        weight: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """`noise(k, D)`: the (k, B, D) standard normal draws to use (evaluation's per-image streams); None: torch's
        global RNG. `weight`: the KL weight instead of this objective's at `progress` (a batched sweep's per-member
        weights, shape (M, 1) against terms of shape (M, B))."""
        weight = self.kl_weight(progress) if weight is None else weight
        x_in = x if self.input_dropout == 0 or progress is None else drop_inputs(x, self.input_dropout)
        if progress is not None and (self.gradient == "dreg" or self.stratified):
            q, z, terms, loss = self._reweighted(model, x, x_in, weight)
        else:
            q, z, terms, loss = self._bound(model, x, x_in, weight, noise)
        if self.triplet_weight > 0:
            if y is None:
                raise UserError(
                    "objective.triplet_weight > 0 needs a labelled dataset (digits, mnist, "
                    "fashion_mnist, cifar10, image_folder or synthetic); set objective.triplet_weight=0."
                )
            terms["triplet"] = triplet_loss(q.mean, y, self.triplet_margin)
            loss = loss + self.triplet_weight * terms["triplet"]
        if self.penalised and progress is not None:  # training only: evaluation reports the model's ELBO terms
            loss = loss + self._penalties(model, q, z[0], terms)
        terms["loss"] = loss
        return terms

    def _bound(self, model, x: Tensor, x_in: Tensor, weight, noise) -> tuple:
        """(q, z (k, B, D), terms, loss) of the ELBO (k = 1) or the IWAE bound, the gradient pathwise."""
        q = model.posterior(x_in)
        if noise is None:
            z = q.rsample((self.k,))  # (k, B, D), reparameterised
        else:
            z = q.from_noise(noise(self.k, q.noise_dim))
        log_px = self._log_px(model, x, z)  # (k, B)
        recon = log_px[0]  # (B,) the reported terms use the first sample
        kl = model.prior.analytic_kl(q) if self.analytic_kl else None
        log_ratio = None  # log q(z|x) - log p(z) for every sample, when needed
        if kl is None or self.k > 1:
            log_ratio = q.log_prob(z) - self._log_prior(model, z)  # (k, B)
        if kl is None:
            kl = log_ratio[0]
        terms = {"elbo": recon - kl, "recon": recon, "kl": kl}
        if self.k == 1:
            kl_term = kl + self._free_bits_penalty(model, q, z[0])
            loss = -(recon - weight * kl_term)
        else:
            log_w = log_px - weight * log_ratio  # (k, B)
            bound = torch.logsumexp(log_w, dim=0) - math.log(self.k)
            terms["iwae"] = torch.logsumexp(log_px - log_ratio, dim=0) - math.log(self.k)
            loss = -(bound - weight * self._free_bits_penalty(model, q, z[0]))
        return q, z, terms, loss

    def _reweighted(self, model, x: Tensor, x_in: Tensor, weight) -> tuple:
        """(q, z, terms, loss) in training with `gradient=dreg` and/or `stratified`: the bound
        sum_c w_c [log (1/k) sum_j exp(log_w_cj)] over strata c (one stratum of weight 1 unless stratified)."""
        params = model.encode(x_in)
        q = model.variational(params)
        q_fixed = model.variational(params.detach()) if self.gradient == "dreg" else q
        if self.stratified:
            z, log_strata = stratified_draws(q, self.k)  # (k, C, B, D), (C, B)
        else:
            z, log_strata = q.rsample((self.k,))[:, None], torch.zeros(1, len(x), device=x.device)
        k, c = z.shape[:2]
        path = z.view_as(z)  # the draws as the bound reads them: DReG reweights the gradient reaching them
        flat = path.flatten(0, 1)  # (k * C, B, D)
        log_px = self._log_px(model, x, flat).unflatten(0, (k, c))  # (k, C, B)
        log_ratio = (q_fixed.log_prob(flat) - self._log_prior(model, flat)).unflatten(0, (k, c))
        log_w = log_px - weight * log_ratio
        strata = torch.logsumexp(log_w, dim=0) - math.log(k)  # (C, B)
        share = log_strata.exp()
        bound = (share * strata).sum(0)
        if self.gradient == "dreg":
            normalised = torch.softmax(log_w, dim=0).detach()  # (k, C, B)
            if path.requires_grad:
                path.register_hook(lambda g: g * normalised[..., None])  # with the value's own weight: weight squared
            fixed = share.detach()
            surrogate = (fixed * (normalised * log_w).sum(0) + (share - fixed) * strata.detach()).sum(0)
            bound = bound.detach() + surrogate - surrogate.detach()  # the bound's value, DReG's gradient
        recon, kl = ((share * t[0]).sum(0) for t in (log_px, log_ratio))
        terms = {"elbo": recon - kl, "recon": recon, "kl": kl}
        if k > 1:
            terms["iwae"] = (share * (torch.logsumexp(log_px - log_ratio, dim=0) - math.log(k))).sum(0)
        loss = -(bound - weight * self._free_bits_penalty(model, q, z[0, 0]))
        return q, z[:, 0], terms, loss

    def _log_px(self, model, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) (S, B) for draws z (S, B, D)."""
        x_s = x if len(z) == 1 else x.repeat(len(z), *[1] * (x.dim() - 1))  # (S*B, *shape)
        return model.decode(z.flatten(0, 1)).log_prob(x_s).unflatten(0, (len(z), -1))

    def _log_prior(self, model, z: Tensor) -> Tensor:
        return model.prior.log_prob(z.flatten(0, 1)).unflatten(0, (len(z), -1))

    def _penalties(self, model, q: td.Distribution, z: Tensor, terms: dict[str, Tensor]) -> Tensor:
        """(B,) the weighted batch penalties of latent_penalties.py, each also reported as a term. The total
        correlation and DIP read q's mean and log-variance: posterior=gaussian only (config/checks.py)."""
        total = torch.zeros_like(z[:, 0])
        if self.tc_weight > 0 or self.dip != "none":
            mu, logvar = q.base_dist.loc, 2 * q.base_dist.scale.log()
        if self.tc_weight > 0:
            if self.tc_estimator == "mss" and not self.dataset_size:
                raise UserError("objective.tc_estimator=mss needs the training set's size; use tc_estimator=mws here")
            terms["tc"] = total_correlation(z, mu, logvar, self.dataset_size or len(z), self.tc_estimator)
            total = total + self.tc_weight * terms["tc"]
        if self.dip != "none":
            if type(model.prior).__name__ != "GaussianPrior":
                raise UserError(
                    f"objective.dip={self.dip} pulls q(z) towards N(0, I), which is prior=gaussian's shape only; "
                    f"with prior {type(model.prior).__name__} use objective.tc_weight or mmd_weight, or set "
                    f"objective.dip=none."
                )
            terms["dip"] = dip_penalty(mu, logvar, self.dip, *self.dip_lambdas).expand_as(total)
            total = total + terms["dip"]
        if self.mmd_weight > 0:
            terms["mmd"] = mmd(z, model.prior.sample(len(z))).expand_as(total)
            total = total + self.mmd_weight * terms["mmd"]
        if self.factor_vae_weight > 0:  # FactorVAE: the critic's TC estimate, and the critic's own loss
            terms["factor_tc"], terms["critic"] = model.critic.total_correlation(z), model.critic.loss(z)
            total = total + self.factor_vae_weight * terms["factor_tc"] + terms["critic"]
        return total

    def _free_bits_penalty(self, model, q: td.Distribution, z: Tensor) -> Tensor | float:
        """sum_d max(0, lambda - batch-average KL_d): added to the KL, it makes each dimension below the floor count
        as lambda (exactly, for a factorised prior and posterior). Priors or posteriors without marginals get the
        floor on the total KL."""
        if self.free_bits <= 0:
            return 0.0
        per_dim = model.prior.kl_per_dim(q.marginal(), z)  # (B, D); batch axis -2 (a member axis may lead)
        if per_dim is None:
            total = (q.log_prob(z) - model.prior.log_prob(z)).mean(-1, keepdim=True)
            return F.relu(self.free_bits * z.shape[-1] - total)
        return F.relu(self.free_bits - per_dim.mean(-2)).sum(-1, keepdim=True)

"""`likelihood=correlated_gaussian`: a table's p(x|z) whose noise is correlated across columns,
N(mu(z), Sigma) with Sigma = diag(sigma^2) + V V^T over the real-valued columns (V: D x `rank`, learned, one for all
z; a low-rank-plus-diagonal covariance, as in factor analysis), and the binary and one-hot columns Bernoulli and
categorical given z as with likelihood=gaussian.

Why: with a diagonal Gaussian p(x|z), every dependence between columns has to pass through z, and the KL term
charges for each bit of it; on a table whose columns are related linearly and weakly (a regression with R^2 of
0.16), the fitted model keeps about a third of E[y | x]'s slope, and regressions on its multiple imputations are
attenuated (docs/imputation.md, "Inference after imputation"). Here the linear part of the dependence lives in
Sigma, at no KL cost; mu(z) carries what is left.

Missing entries (NaN) are marginalised exactly: log p(x_obs | z) is the Gaussian density of the observed real
entries under Sigma's observed block (one Cholesky factor per distinct pattern of observed entries), plus the
observed binary and categorical entries' log-probabilities. The imputations condition on the observed entries
within p(x|z) as well: `conditional_mean(x)` is E[x_mis | x_obs, z] = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o), and
`conditional_sample(x)` draws x_mis ~ p(x_mis | x_obs, z) by conditioning a joint draw on x_obs (Matheron's rule:
x~ ~ N(mu, Sigma), then x~_m + Sigma_mo Sigma_oo^-1 (x_o - x~_o)).

Where Sigma starts (`start_correlation` = a): at C_a = diag(C) + a (C - diag(C)), C the maximum-likelihood covariance
of the training rows' real columns under a multivariate normal with their entries missing at random (`gaussian_mle`:
EM, Little & Rubin 2002, section 11.2, started from the pairwise-complete covariance): every column's variance, and
the fraction a of every covariance. C_a's eigenvalues are floored at EIGEN_FLOOR and it is split as sigma^2 = s^2 on
every column and V V^T the rest (the top `rank` eigen-directions; a lower rank leaves the remainder's diagonal to
sigma^2), s^2 = min(init_sigma^2, half the smallest eigenvalue). null: sigma = init_sigma and V = 0.01 times the
identity, the dependence between columns grown from nothing by the optimiser.

Why 1 (measured, docs/imputation.md): early stopping on a small validation split selects a model partway along its
path, and a path that grows the covariances (from null, or from 0.5) is stopped with them shrunk -- the shrinkage
that predicts new rows best is the one that biases a regression fitted to the imputations (the inference study,
20 replications at 30 % MCAR: E[y | x]'s slope on the truth's 0.84 from null, 0.91 from 0.5, 0.98 from 1; beta1's
relative bias -10.6 %, -6.6 %, -2.5 %). Started at the maximum-likelihood fit, the path starts where an analysis
wants it. The price, on breast_cancer (30 columns, some nearly collinear) at 30 % MAR: from 1, z goes unused (0
active units) and the imputer is the Gaussian's (RMSE 0.84 for seed 0), where from 0.5 z stays in use (12 active
units, RMSE 0.60): the decoder cannot beat the linear fit it starts at by more than the KL it would pay.

Proper multiple imputations (`evaluation.imputation.proper=true`, imputation/importance.py): one fitted model's M
draws hold (mu, Sigma) at their estimates, so an analysis pooled over them misses the estimation error (improper, in
Rubin's sense; intervals too narrow). `parameter_draws` gives each imputation its own setting: (m_b, C_b) drawn from
the posterior of the real columns' mean and covariance under a multivariate normal with the Jeffreys prior, given
the training rows (`posterior_draws`: data augmentation, the missing entries drawn in turn), carried over to the
model as Sigma_b = A Sigma A^T with A = C_b^(1/2) C^(-1/2) (C the ML fit, which A takes to C_b exactly) and
mu_b(z) = mu(z) + m_b - m. Where z goes unused (the decoder's output constant, Sigma = C) that is the Bayesian
normal model's imputation, as R's norm package (Schafer 1997) and mice's norm; where z carries part of the
dependence, mu(z)'s own estimation error is not drawn (a bootstrap ensemble carries it, at B trainings' cost).
"""

from __future__ import annotations

import hashlib
import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributions as td
from torch import Tensor, nn

from vae_runner.errors import UserError
from vae_runner.model.likelihoods import Gaussian

GATHER_FLOATS = 1 << 24  # rows of Cholesky factors gathered at once (64 MB of float32)
SHARED_ROWS = 8  # per_row: rows per distinct factor from which one solve per factor beats gathering them
EM_ITERATIONS = 200  # the start's EM: most rounds (it stops earlier once the covariance settles)
DA_BURN_IN = 20  # proper imputation's data augmentation: steps before the first draw of the parameters,
DA_THIN = 5  # and between draws (the chain's autocorrelation after k steps ~ the missing information's fraction^k)
EIGEN_FLOOR = 0.01  # the start: the covariance's eigenvalues at least this (of standardised columns), so that
# nearly collinear columns start with a Cholesky factor float32 computes well


def pattern_factors(cov: Tensor, covered: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """covered (N, D) bool: the entries each row's Gaussian covers -> the distinct patterns (U, D), the Cholesky
    factors of cov restricted to each, padded with the identity elsewhere (U, D, D), and each row's pattern (N,)."""
    keys, inverse = torch.unique(packed(covered), dim=0, return_inverse=True)
    patterns = covered[first_of_each(inverse, len(keys))]
    both = patterns[:, :, None] & patterns[:, None, :]
    padded = torch.where(both, cov, torch.zeros_like(cov)) + torch.diag_embed((~patterns).to(cov.dtype))
    return patterns, torch.linalg.cholesky(padded), inverse


def packed(bits: Tensor) -> Tensor:
    """(N, D) bool -> (N, ceil(D / 62)) int64, 62 of a row's bits to a word: rows equal exactly where their words
    are (torch.unique over a few integer columns in place of D bool ones: 6x faster on 114,000 rows of 30)."""
    width = bits.shape[1]
    words = torch.nn.functional.pad(bits, (0, -width % 62)).view(len(bits), -1, 62).long()
    return (words << torch.arange(62, device=bits.device)).sum(-1)


def first_of_each(inverse: Tensor, groups: int) -> Tensor:
    """The index of the first row of each of `groups` groups (inverse: each row's group)."""
    rows = torch.arange(len(inverse), device=inverse.device)
    return torch.full((groups,), len(inverse), device=inverse.device).scatter_reduce(0, inverse, rows, "amin")


def per_row(chol: Tensor, inverse: Tensor, resid: Tensor, solve) -> Tensor:
    """solve(each row's factor, its residual) over the rows (n, D): where many rows share each factor (an
    importance-sampling pass: K proposals of every row), one solve per factor with its rows as the right-hand
    sides; else the factors gathered per row, in chunks of bounded memory."""
    if not len(resid):
        return resid
    if len(resid) >= SHARED_ROWS * len(chol):
        order = inverse.argsort()
        counts = torch.bincount(inverse, minlength=len(chol)).tolist()
        pieces = [solve(c, r.T).T for c, r in zip(chol, resid[order].split(counts))]
        return torch.cat(pieces)[order.argsort()]
    rows = max(1, GATHER_FLOATS // chol[0].numel())
    return torch.cat(
        [solve(chol[inverse[i : i + rows]], resid[i : i + rows, :, None])[..., 0] for i in range(0, len(resid), rows)]
    )


class CorrelatedNormal(td.Distribution):
    """N(loc, cov) over the `real` columns (a bool mask over the last dimension; cov (D, D), its other rows and
    columns unused) beside `per_entry` (a per-entry distribution over all D columns, used where `real` is False);
    NaN entries are missing: `log_prob` marginalises them, `conditional_*` fill them given the observed ones."""

    arg_constraints: dict = {}

    def __init__(self, per_entry: td.Distribution, loc: Tensor, cov: Tensor, real: Tensor):
        self.per_entry, self.loc, self.cov, self.real = per_entry, loc, cov, real
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def _rows(self, x: Tensor, base: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x and base broadcast and flattened to (N, D), the covered entries (observed and real), their factors."""
        x, base = torch.broadcast_tensors(x, base)
        x, base = x.reshape(-1, x.shape[-1]), base.reshape(-1, x.shape[-1])
        gaussian = ~torch.isnan(x) & self.real
        _, chol, inverse = pattern_factors(self.cov, gaussian)
        return torch.where(gaussian, x - base, torch.zeros_like(x)), gaussian, chol, inverse

    def log_prob(self, x: Tensor) -> Tensor:
        shape = torch.broadcast_shapes(x.shape, self.loc.shape)[:-1]
        resid, gaussian, chol, inverse = self._rows(x, self.loc)
        white = per_row(chol, inverse, resid, lambda c, r: torch.linalg.solve_triangular(c, r, upper=False))
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)[inverse]
        log_p = -0.5 * white.pow(2).sum(-1) - log_det - 0.5 * math.log(2 * math.pi) * gaussian.sum(-1)
        seen = ~torch.isnan(x)
        others = seen & ~self.real
        per_entry = self.per_entry.log_prob(torch.where(seen, x, torch.zeros_like(x)))
        log_p_others = torch.where(others, per_entry, torch.zeros_like(per_entry)).sum(-1)
        return log_p.view(shape) + log_p_others.expand(shape)

    def _condition(self, x: Tensor, base: Tensor) -> Tensor:
        """base_m + cov_mo cov_oo^-1 (x_o - base_o) in x's missing entries (base conditioned on its observed ones), x's
        observed entries as they are."""
        resid, _, chol, inverse = self._rows(x, base)
        solved = per_row(chol, inverse, resid, lambda c, r: torch.cholesky_solve(r, c))
        shape = torch.broadcast_shapes(x.shape, base.shape)
        filled = base.expand(shape) + (solved @ self.cov).view(shape)
        return torch.where(torch.isnan(x), filled, x)  # the observed entries exactly as given

    def conditional_mean(self, x: Tensor) -> Tensor:
        """E[x | x_obs, z]: x's observed entries, the missing real ones given them, the others' means."""
        return torch.where(self.real, self._condition(x, self.loc), self.per_entry.mean)

    def conditional_sample(self, x: Tensor) -> Tensor:
        """One draw of x_mis ~ p(x_mis | x_obs, z) per row (observed entries returned as x has them)."""
        return torch.where(self.real, self._condition(x, self.sample()), self.per_entry.sample())

    @property
    def mean(self) -> Tensor:
        return self.per_entry.mean

    def sample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        chol = torch.linalg.cholesky(self.cov)
        joint = self.loc + torch.randn(shape, device=self.loc.device) @ chol.T
        return torch.where(self.real, joint, self.per_entry.sample(torch.Size(sample_shape)))


def pairwise_covariance(x: Tensor) -> Tensor:
    """The (F, F) covariance of the columns of `x` (N, F; NaN: missing), each entry from the rows where both columns
    are observed (0 where fewer than two are; a column's variance 1 where it has fewer than two values)."""
    seen = ~x.isnan()
    both = seen.T.double() @ seen.double()  # rows observing each pair
    filled = x.nan_to_num()
    mean = (filled.T @ seen.double()) / both.clamp_min(1)  # [j, k]: column j's mean over the rows observing k too
    products = filled.T @ filled
    cov = (products - mean * mean.T * both) / (both - 1).clamp_min(1)
    cov = torch.where(both >= 2, cov, torch.zeros_like(cov))
    return cov + torch.diag(torch.where(cov.diagonal() > 0, 0.0, 1.0).double())


def gaussian_mle(
    x: Tensor, iterations: int = EM_ITERATIONS, tol: float = 1e-6, start: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """The mean (F,) and covariance (F, F) maximising the observed entries' multivariate normal likelihood, by EM
    (x: N, F, NaN missing; float64 advised), started from `start` (mean, covariance) or else the observed means and
    the pairwise-complete covariance (eigenvalues floored at EIGEN_FLOOR): each E-step fills a row's missing
    entries with their conditional mean given its observed ones and adds their conditional covariance; stops when
    no entry of the covariance moves by `tol`."""
    seen = ~x.isnan()
    if seen.all():
        return x.mean(0), torch.cov(x.T, correction=0).reshape(x.shape[1], x.shape[1])
    if start is None:
        mean = x.nan_to_num().sum(0) / seen.sum(0).clamp_min(1)
        values, vectors = torch.linalg.eigh(pairwise_covariance(x))
        cov = (vectors * values.clamp_min(EIGEN_FLOOR)) @ vectors.T
    else:
        mean, cov = start
    for _ in range(iterations):
        filled, extra = conditional_moments(x, seen, mean, cov)
        new_mean = filled.mean(0)
        centred = filled - new_mean
        new_cov = (centred.T @ centred + extra) / len(x)
        moved = (new_cov - cov).abs().max()
        mean, cov = new_mean, new_cov
        if moved < tol:
            break
    return mean, cov


FITS: dict = {}  # fitted: (shape, dtype, digest of the rows) -> their ML (mean, covariance)


def fitted(x: Tensor) -> tuple[Tensor, Tensor]:
    """gaussian_mle(x) of the last few tables given (by their bytes): a run's start and its proper imputations
    fit the same training rows, and the EM costs seconds (2.5 s on breast_cancer's, 200 rounds)."""
    key = (tuple(x.shape), x.dtype, hashlib.sha1(x.cpu().contiguous().numpy().tobytes()).hexdigest())
    if key not in FITS:
        FITS[key] = gaussian_mle(x)
        while len(FITS) > 4:
            del FITS[next(iter(FITS))]
    return tuple(t.clone() for t in FITS[key])


def conditional_moments(x: Tensor, seen: Tensor, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor]:
    """EM's E-step: `x` with each row's missing entries at E[x_m | x_o] = mu_m + S_mo S_oo^-1 (x_o - mu_o), and the
    sum over rows of Cov[x_m | x_o] = S_mm - S_mo S_oo^-1 S_om (zero outside the missing block); one Cholesky factor
    per distinct pattern of observed entries, as CorrelatedNormal's log_prob and conditional_mean."""
    patterns, chol, inverse = pattern_factors(cov, seen)
    resid = torch.where(seen, x - mean, torch.zeros_like(x))
    solved = per_row(chol, inverse, resid, lambda c, r: torch.cholesky_solve(r, c))
    filled = torch.where(seen, x, mean + solved @ cov)
    precision = torch.cholesky_inverse(chol) * (patterns[:, :, None] & patterns[:, None, :])  # S_oo^-1, 0 elsewhere
    missing = ~patterns
    rows = torch.bincount(inverse, minlength=len(patterns)).to(cov.dtype)[:, None, None]
    extra = (rows * (cov - cov @ precision @ cov) * (missing[:, :, None] & missing[:, None, :])).sum(0)
    return filled, extra


def symmetric_power(cov: Tensor, power: float) -> Tensor:
    """cov ** power (0.5: the symmetric square root; -0.5: its inverse) by the eigen-decomposition, eigenvalues
    floored at EIGEN_FLOOR as the start's."""
    values, vectors = torch.linalg.eigh(cov)
    return (vectors * values.clamp_min(EIGEN_FLOOR).pow(power)) @ vectors.T


def root(cov: Tensor) -> Tensor:
    """A symmetric R with R R^T = cov (negative eigenvalues of a nearly singular cov, float error, read as 0)."""
    values, vectors = torch.linalg.eigh(cov)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def conditional_draw(x: Tensor, seen: Tensor, mean: Tensor, cov: Tensor, generator: torch.Generator) -> Tensor:
    """`x` (N, F) with each row's missing entries drawn from N(mu, S) given its observed ones (Matheron's rule, as
    CorrelatedNormal.conditional_sample: a joint draw conditioned on the observed entries)."""
    joint = mean + torch.randn(x.shape, generator=generator, dtype=x.dtype) @ root(cov).T
    _, chol, inverse = pattern_factors(cov, seen)
    resid = torch.where(seen, x - joint, torch.zeros_like(x))
    solved = per_row(chol, inverse, resid, lambda c, r: torch.cholesky_solve(r, c))
    return torch.where(seen, x, joint + solved @ cov)


def posterior_draws(
    x: Tensor, draws: int, seed: int, burn_in: int = DA_BURN_IN, thin: int = DA_THIN
) -> tuple[tuple[Tensor, Tensor], list[tuple[Tensor, Tensor]]]:
    """The maximum-likelihood (mean, covariance) of the rows x (N, F; NaN missing; float64) and `draws` draws of
    them from their posterior under a multivariate normal with the Jeffreys prior, by data augmentation (Schafer
    1997, section 5.4; Tanner & Wong 1987): from the ML fit, each step draws the missing entries given the
    parameters, then Sigma ~ inverse-Wishart(N - 1, the completed rows' scatter) and mu ~ N(their mean, Sigma / N);
    `burn_in` steps, then one draw every `thin` steps. Seeded by `seed`. Each Sigma's eigenvalues are floored at
    EIGEN_FLOOR (of standardised columns), as the start's: with nearly collinear columns whose rows all miss some
    entries, the chain otherwise drifts toward a singular Sigma, the missing entries drawn ever closer to the
    collinear plane (breast_cancer, 300 rows at 30 % MCAR: the smallest eigenvalue 2e-5 at the ML fit, 5e-6 after
    20 steps); where every eigenvalue is above the floor (the inference study's tables) the draws are exact."""
    from scipy import stats  # where it is used: start-up (tests/test_startup.py)

    mean, cov = full = fitted(x)
    seen, n, f = ~x.isnan(), len(x), x.shape[1]
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    out = []
    for step in range(1, burn_in + thin * draws + 1):
        filled = conditional_draw(x, seen, mean, cov, generator)
        centre = filled.mean(0)
        scatter = (filled - centre).T @ (filled - centre)
        df = max(n - 1, f)  # the Jeffreys prior's posterior; at least F (a proper distribution) with few rows
        cov = torch.from_numpy(np.atleast_2d(stats.invwishart.rvs(df, scatter.numpy(), random_state=rng)))
        values, vectors = torch.linalg.eigh((cov + cov.T) / 2)
        cov = (vectors * values.clamp_min(EIGEN_FLOOR)) @ vectors.T  # no drift to a singular Sigma (docstring)
        mean = centre + root(cov / n) @ torch.randn(f, generator=generator, dtype=x.dtype)
        if step > burn_in and (step - burn_in) % thin == 0:
            out.append((mean, cov))
    return full, out


class CorrelatedGaussian(Gaussian):
    """p(x|z) = N(decoder output, diag(sigma^2) + V V^T) over a table's real-valued columns (the module docstring);
    sigma = min_sigma + softplus(raw) per column as in Gaussian, V (D, rank) (rank null: D, a full covariance);
    `start_correlation` where Sigma starts (the module docstring)."""

    def __init__(
        self, data_shape, init_sigma: float, min_sigma: float, rank: int | None, start_correlation: float | None
    ):
        if len(data_shape) != 1:
            raise UserError(
                f"likelihood=correlated_gaussian models the columns of a table (dataset=tabular: rows of D "
                f"columns); these data are shaped {tuple(data_shape)}. Use likelihood=gaussian for them."
            )
        super().__init__(data_shape, init_sigma, min_sigma)
        width = data_shape[0] if rank is None else min(int(rank), data_shape[0])
        self.factor = nn.Parameter(0.01 * torch.eye(data_shape[0], width))
        self.start_correlation, self.init_sigma = start_correlation, float(init_sigma)
        self.drawn_parameters: tuple[Tensor, Tensor] | None = None  # `drawn`: a proper imputation's (cov, shift)

    @torch.no_grad()
    def start_from(self, x: Tensor) -> None:
        """Sigma at the real columns' maximum-likelihood variances and `start_correlation` of their covariances in
        the training rows `x` (the module docstring); nothing for start_correlation=null."""
        real = self.real_columns().cpu()
        if self.start_correlation is None or x.ndim != 2 or not real.any():
            return
        _, cov = fitted(x[:, real].double().cpu())
        variances = torch.diag(cov.diagonal())
        cov = variances + self.start_correlation * (cov - variances)
        values, vectors = torch.linalg.eigh(cov)
        values = values.clamp_min(EIGEN_FLOOR)
        s2 = min(self.init_sigma**2, float(values[0]) / 2)
        top = values.argsort(descending=True)[: self.factor.shape[1]]
        factor = torch.zeros(self.factor.shape, dtype=torch.float64)
        factor[real, : len(top)] = vectors[:, top] * (values[top] - s2).sqrt()
        variance = (vectors * values) @ vectors.T
        left = (variance.diagonal() - factor[real].pow(2).sum(1)).clamp_min(s2)  # rank < D: the rest on sigma^2
        sigma = torch.full(self.data_shape, self.init_sigma, dtype=torch.float64)
        sigma[real] = left.sqrt()
        self.factor.copy_(factor)
        self.raw_sigma.copy_(torch.log(torch.expm1((sigma - self.min_sigma).clamp_min(1e-6))))

    @torch.no_grad()
    def parameter_draws(self, x: Tensor, draws: int, seed: int) -> list[tuple[Tensor, Tensor]]:
        """`draws` draws of the Gaussian part's parameters given the training rows x (N, D; NaN missing), each
        (covariance (D, D), shift of the decoder's output (D,)) for one proper imputation (`drawn`): with C and m
        the real columns' ML covariance and mean on x, and C_b, m_b a draw of them from their posterior
        (`posterior_draws`), the model's covariance S becomes A S A^T, A = C_b^(1/2) C^(-1/2) (which takes C to
        C_b), and mu(z) becomes mu(z) + m_b - m (the module docstring)."""
        real = self.real_columns().cpu()
        index = real.nonzero().squeeze(1)
        (mean, cov), replicates = posterior_draws(x[:, real].double().cpu(), draws, seed)
        model = self.covariance.double().cpu()
        inverse_root = symmetric_power(cov, -0.5)
        out = []
        for mean_b, cov_b in replicates:
            a = symmetric_power(cov_b, 0.5) @ inverse_root
            drawn, shift = model.clone(), torch.zeros(self.data_shape, dtype=torch.float64)
            drawn[index[:, None], index] = a @ model[index[:, None], index] @ a.T
            shift[index] = mean_b - mean
            out.append(tuple(t.to(self.factor) for t in (drawn, shift)))
        return out

    @contextmanager
    def drawn(self, parameters: tuple[Tensor, Tensor]):
        """Within the block, p(x|z) under one of `parameter_draws`' settings instead of the fitted one."""
        self.drawn_parameters = parameters
        try:
            yield self
        finally:
            self.drawn_parameters = None

    @property
    def covariance(self) -> Tensor:
        return torch.diag(self.sigma.pow(2)) + self.factor @ self.factor.T

    def real_columns(self) -> Tensor:
        real = torch.ones(self.data_shape, dtype=torch.bool, device=self.factor.device)
        if self.binary_columns is not None:
            real &= ~self.binary_columns.to(real.device)
        if self.count_columns is not None:
            real &= ~self.count_columns.to(real.device)
        for start, stop in self.categorical_columns:
            real[start:stop] = False
        return real

    def forward(self, params: Tensor) -> td.Distribution:
        cov = self.covariance
        if self.drawn_parameters is not None:
            cov, shift = self.drawn_parameters
            params = params + shift
        per_entry = td.Normal(params, self.sigma.expand_as(params), validate_args=False)
        if self.binary_columns is not None:
            per_entry = self.table_distribution(per_entry)
        return CorrelatedNormal(per_entry, params, cov, self.real_columns())

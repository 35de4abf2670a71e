"""Likelihoods p(x|z): each maps the decoder's output (B, *shape) to a `torch.distributions` object whose
`log_prob(x)` is the normalised log-density summed over data dimensions (B,), in nats, and whose `mean` is the
picture shown for samples and reconstructions. On data with missing entries (NaN; `missing.*`) the likelihood is
`ObservedOnly`: log p(x_obs | z), the sum over the observed entries only. `Categorical` is a label modality's.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as td
import torch.nn.functional as F
from torch import Tensor, nn

from vae_runner.errors import UserError


class ObservedOnly(td.Distribution):
    """p(x_obs | z) of a per-entry distribution: `log_prob(x)` sums the log-densities of the entries of x that are
    not NaN (a missing entry contributes 0, and no gradient); `mean` and `sample` are the complete distribution's."""

    arg_constraints: dict = {}

    def __init__(self, per_entry: td.Distribution, event_dims: int):
        self.per_entry = per_entry
        self.event_dims = event_dims
        shape = per_entry.batch_shape
        super().__init__(shape[: len(shape) - event_dims], shape[len(shape) - event_dims :], validate_args=False)

    def log_prob(self, x: Tensor) -> Tensor:
        seen = ~torch.isnan(x)
        log_p = self.per_entry.log_prob(torch.where(seen, x, torch.zeros_like(x)))
        return torch.where(seen, log_p, torch.zeros_like(log_p)).flatten(-self.event_dims).sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.per_entry.mean

    def sample(self, sample_shape=()) -> Tensor:
        return self.per_entry.sample(torch.Size(sample_shape))


class WithBinaryColumns(td.Distribution):
    """A table's per-entry distribution: Normal(loc, scale) in its real-valued columns, Bernoulli(logits = loc) in its
    binary ones (`binary`, a bool mask over the last dimension), Poisson(rate = exp(loc + count_base)) in its counts
    (`counts`, a mask, or None); `mean` is the Bernoulli's probability and the Poisson's rate there. Each one-hot group
    of columns (`groups`, (start, stop) pairs) is one categorical over its levels: entry j's log-density is
    x_j log P(level j), so a whole observed group sums to the categorical's log-probability. P is softmax(loc) over
    the group, or for an ordinal group (`ordinal`: {(start, stop): cutpoints (K - 1,), increasing}) the cumulative
    logit (proportional odds, McCullagh 1980) P(level <= k) = sigmoid(cutpoint_k - eta), eta the group's first loc."""

    arg_constraints: dict = {}

    def __init__(self, normal: td.Normal, binary: Tensor, groups=(), counts=None, count_base=None, ordinal=None):
        self.normal = normal
        self.binary = binary
        self.groups = tuple(groups)
        self.ordinal = ordinal or {}
        self.bernoulli = td.Bernoulli(logits=normal.loc, validate_args=False)
        self.counts = counts
        if counts is not None:
            self.poisson = td.Poisson((normal.loc + count_base).clamp(max=30).exp(), validate_args=False)
        super().__init__(normal.batch_shape, validate_args=False)

    def group_log_probs(self, start: int, stop: int) -> Tensor:
        """log P(level) (..., K) of the group (start, stop)."""
        loc = self.normal.loc[..., start:stop]
        if (start, stop) not in self.ordinal:
            return torch.log_softmax(loc, -1)
        below = torch.sigmoid(self.ordinal[(start, stop)] - loc[..., :1])  # (..., K - 1) P(level <= k)
        cdf = torch.cat([torch.zeros_like(loc[..., :1]), below, torch.ones_like(loc[..., :1])], -1)
        return torch.log((cdf[..., 1:] - cdf[..., :-1]).clamp_min(1e-12))

    def _in_groups(self, values: Tensor, per_group) -> Tensor:
        """`values` with each group's columns replaced by per_group(log P of the group's levels, start, stop)."""
        out = values.clone()
        for start, stop in self.groups:
            out[..., start:stop] = per_group(self.group_log_probs(start, stop), start, stop)
        return out

    def _where_counts(self, counts: Tensor, other: Tensor) -> Tensor:
        return other if self.counts is None else torch.where(self.counts, counts, other)

    def log_prob(self, x: Tensor) -> Tensor:
        per_entry = torch.where(self.binary, self.bernoulli.log_prob(x), self.normal.log_prob(x))
        if self.counts is not None:
            per_entry = self._where_counts(self.poisson.log_prob(torch.where(self.counts, x, 0.0)), per_entry)
        return self._in_groups(per_entry, lambda log_p, a, b: x[..., a:b] * log_p)

    @property
    def mean(self) -> Tensor:
        mean = torch.where(self.binary, self.bernoulli.probs, self.normal.loc)
        mean = mean if self.counts is None else self._where_counts(self.poisson.rate, mean)
        return self._in_groups(mean, lambda log_p, a, b: log_p.exp())

    def sample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape)
        drawn = torch.where(self.binary, self.bernoulli.sample(shape), self.normal.sample(shape))
        if self.counts is not None:
            drawn = self._where_counts(self.poisson.sample(shape), drawn)
        for start, stop in self.groups:
            log_p = self.group_log_probs(start, stop)
            log_p = log_p.expand(*shape, *log_p.shape)
            drawn[..., start:stop] = td.OneHotCategorical(logits=log_p, validate_args=False).sample()
        return drawn


class Likelihood(nn.Module):
    binary = False  # True when the density is for {0, 1} data (the default binarisation follows it)

    def __init__(self, data_shape):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.observed_only = False  # set for data with missing entries (VAE.accept_missing)
        self.register_buffer("binary_columns", None, persistent=False)  # a table's 0/1 columns (model_binary_columns)
        self.categorical_columns: tuple = ()  # a table's one-hot groups, (start, stop) each
        self.register_buffer("count_columns", None, persistent=False)  # a table's counts (Poisson), where any
        self.ordinal_columns: tuple = ()  # the groups whose levels are ordered, each with its cutpoints

    def forward(self, params: Tensor) -> td.Distribution:
        raise NotImplementedError

    def start_from(self, x: Tensor) -> None:
        """A data-dependent starting point from the training rows `x` (NaN: missing), before training; none here."""

    def model_binary_columns(self, binary: Tensor, groups=(), counts: Tensor | None = None, ordinal=()) -> None:
        """A real-valued likelihood of a table: Bernoulli with logits = the decoder's output in the `binary` columns,
        a categorical over each one-hot group of `groups` (cumulative-logit for those in `ordinal`, with learned
        cutpoints), Poisson in the `counts` columns (a learned-at-start log-rate base `count_base`)."""
        if not isinstance(self, MSE | Gaussian):
            raise UserError(f"binary columns need likelihood=gaussian or mse, not {type(self).__name__}")
        self.binary_columns = binary
        self.categorical_columns = tuple(map(tuple, groups))
        if counts is not None and bool(counts.any()):
            self.count_columns = counts
            self.register_buffer("count_base", torch.zeros(self.data_shape))
        self.ordinal_columns = tuple(map(tuple, ordinal))
        if self.ordinal_columns:  # raw (K - 1,) per group: cutpoint_1 = raw_1, cutpoint_k = cutpoint_(k-1) + softplus
            self.cutpoint_raw = nn.ParameterList(
                [nn.Parameter(torch.zeros(b - a - 1)) for a, b in self.ordinal_columns]
            )

    def cutpoints(self) -> dict:
        """Each ordinal group's increasing cutpoints (K - 1,)."""
        return {
            group: torch.cumsum(torch.cat([raw[:1], F.softplus(raw[1:]) + 1e-4]), 0)
            for group, raw in zip(self.ordinal_columns, getattr(self, "cutpoint_raw", ()))
        }

    @torch.no_grad()
    def start_discrete(self, x: Tensor) -> None:
        """Counts and ordinal levels start at the training rows' observed frequencies: count_base the log of each
        count column's mean, the cutpoints the logits of each ordinal group's cumulative shares of its levels."""
        if self.count_columns is not None:
            mean = torch.nanmean(x, 0).nan_to_num(1.0)
            self.count_base.copy_(torch.where(self.count_columns, mean.clamp_min(0.05).log(), 0.0))
        for (a, b), raw in zip(self.ordinal_columns, getattr(self, "cutpoint_raw", ())):
            share = torch.nanmean(x[:, a:b], 0).nan_to_num(1.0 / (b - a)).clamp_min(1e-3)
            cut = torch.logit((torch.cumsum(share / share.sum(), 0)[:-1]).clamp(1e-3, 1 - 1e-3))
            gaps = (cut[1:] - cut[:-1]).clamp_min(1e-3)
            raw.copy_(torch.cat([cut[:1], torch.log(torch.expm1(gaps))]))

    def table_distribution(self, per_entry: td.Normal) -> WithBinaryColumns:
        count_base = getattr(self, "count_base", None)
        return WithBinaryColumns(
            per_entry, self.binary_columns, self.categorical_columns, self.count_columns, count_base, self.cutpoints()
        )

    def independent(self, per_entry: td.Distribution) -> td.Distribution:
        """The per-entry distribution with the data dimensions as its event (ObservedOnly for data with NaNs)."""
        if self.binary_columns is not None:
            per_entry = self.table_distribution(per_entry)
        if self.observed_only:
            return ObservedOnly(per_entry, len(self.data_shape))
        return td.Independent(per_entry, len(self.data_shape), validate_args=False)


class Bernoulli(Likelihood):
    """Independent Bernoulli pixels with logits = decoder output. `prob_clamp` = eps keeps every pixel's probability
    in [eps, 1 - eps] (the VampPrior code clamps sigmoid outputs to [1e-5, 1 - 1e-5]): the logits are clamped to
    +-log((1 - eps) / eps), the same density and the same zero gradient outside."""

    binary = True

    def __init__(self, data_shape, prob_clamp: float | None):
        super().__init__(data_shape)
        self.max_logit = None if prob_clamp is None else math.log((1.0 - prob_clamp) / prob_clamp)

    def forward(self, params: Tensor) -> td.Distribution:
        if self.max_logit is not None:
            params = params.clamp(-self.max_logit, self.max_logit)
        # validate_args=False: grey-level targets in [0, 1] (binarize=none) give the cross-entropy.
        return self.independent(td.Bernoulli(logits=params, validate_args=False))


class MSE(Likelihood):
    """Gaussian with mean = decoder output and a fixed sigma: -log p = ||x - mean||^2 / (2 sigma^2) + const."""

    def __init__(self, data_shape, sigma: float):
        super().__init__(data_shape)
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def forward(self, params: Tensor) -> td.Distribution:
        return self.independent(td.Normal(params, self.sigma.expand_as(params), validate_args=False))


class Gaussian(Likelihood):
    """Gaussian with mean = decoder output and a learned per-pixel sigma = min_sigma + softplus(raw)."""

    def __init__(self, data_shape, init_sigma: float, min_sigma: float):
        super().__init__(data_shape)
        self.min_sigma = float(min_sigma)
        gap = max(init_sigma - min_sigma, 1e-6)
        raw = math.log(math.expm1(gap))  # inverse softplus, so sigma starts at init_sigma
        self.raw_sigma = nn.Parameter(torch.full(self.data_shape, raw))

    @property
    def sigma(self) -> Tensor:
        return self.min_sigma + F.softplus(self.raw_sigma)  # (*shape)

    def forward(self, params: Tensor) -> td.Distribution:
        return self.independent(td.Normal(params, self.sigma.expand_as(params), validate_args=False))


class Categorical(Likelihood):
    """One of data_shape[-1] classes, given one-hot (a label modality, model/modalities.py): logits = the decoder's
    output; `mean` is the class probabilities."""

    def forward(self, params: Tensor) -> td.Distribution:
        return td.OneHotCategorical(logits=params, validate_args=False)

"""The reference log-likelihood protocol's parts, each an ordinary option tested against an oracle: GatedDense and
the log-variance clamp, AdamNormGrad against a hand-written reference update, per-epoch warm-up and early stopping
counted from the end of warm-up, the VampPrior's reference initialisation, the file-order validation split, and
the fixes to evaluation (CPU binarisation equal to the reference's numpy draw on every device, per-image noise that
does not depend on batching, closed-form KL per dimension)."""

import hashlib
import math

import numpy as np
import pytest
import torch
import torch.distributions as td
from conftest import LIKELIHOODS, PRIORS, make_cfg, tiny_data

from vae_runner import build, run
from vae_runner import data as data_module
from vae_runner.config.compose import build_option
from vae_runner.data import DataSplits, Split, prepare
from vae_runner.errors import UserError
from vae_runner.evaluation import diagnostics as dx
from vae_runner.evaluation.metrics import evaluate_split, log_likelihood
from vae_runner.model.layers import GatedDense
from vae_runner.model.posteriors.gaussian import DiagonalGaussian
from vae_runner.model.priors.gaussian import GaussianPrior
from vae_runner.model.vae import VAE
from vae_runner.objectives import warmup_weight
from vae_runner.optimizers import Adam, AdamNormGrad
from vae_runner.rng import index_noise


# ------------------------------------------------------------------------------------------ architecture
def test_gated_dense_is_linear_times_sigmoid_gate():
    torch.manual_seed(0)
    layer, x = GatedDense(5, 3), torch.randn(4, 5)
    expected = (x @ layer.h.weight.T + layer.h.bias) * torch.sigmoid(x @ layer.g.weight.T + layer.g.bias)
    torch.testing.assert_close(layer(x), expected)


def test_gated_encoder_clamps_log_variance_and_uses_he_init():
    torch.manual_seed(0)
    enc = build_option(
        "architecture",
        "gated_mlp",
        "encoder",
        input_shape=(1, 28, 28),
        latent_dim=40,
        hidden=[300, 300],
        logvar_clamp=[-6, 2],
    )
    with torch.no_grad():
        enc.logvar.bias.fill_(50.0)
    _, logvar = enc(torch.rand(8, 1, 28, 28)).chunk(2, dim=-1)
    assert logvar.max().item() == 2.0
    with torch.no_grad():
        enc.logvar.bias.fill_(-50.0)
    assert enc(torch.rand(8, 1, 28, 28))[:, 40:].min().item() == -6.0
    w = enc.body[0].h.weight  # (300, 784): N(0, 2 / 784)
    assert w.mean().abs() < 0.002 and w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    unclamped = build_option(
        "architecture", "gated_mlp", "encoder", input_shape=(1, 28, 28), latent_dim=4, hidden=[8], init="torch"
    )
    assert unclamped.logvar_clamp is None and unclamped.body[0].h.weight.abs().max() <= 1 / math.sqrt(784)
    dec = build_option(
        "architecture", "gated_mlp", "decoder", output_shape=(1, 28, 28), latent_dim=40, hidden=[300, 200]
    )
    assert dec(torch.randn(3, 40)).shape == (3, 1, 28, 28) and dec.net[0][0].h.in_features == 40
    assert dec.net[0][0].h.out_features == 200  # the decoder mirrors the encoder's widths


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_gated_mlp_trains_with_every_prior_and_likelihood(prior, likelihood, tmp_path, no_threads):
    overrides = [
        "architecture=gated_mlp",
        "architecture.hidden=[16]",
        "architecture.logvar_clamp=[-6,2]",
        f"prior={prior}",
        f"likelihood={likelihood}",
        "latent_dim=2",
        "evaluation.iw_samples=2",
    ]
    if prior == "vamp":
        overrides.append("prior.n_components=5")
    metrics = run.train(make_cfg(*overrides), tmp_path)
    assert math.isfinite(metrics["test/elbo"])


def test_bad_gated_options_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"architecture.logvar_clamp=\[2.0, -6.0\].*architecture.init='xavier'"):
        run.train(
            make_cfg("architecture=gated_mlp", "architecture.logvar_clamp=[2,-6]", "architecture.init=xavier"), tmp_path
        )


def test_bernoulli_prob_clamp_is_the_reference_clamped_log_bernoulli():
    torch.manual_seed(0)
    logits, x = torch.randn(6, 1, 4, 4) * 20, torch.randint(0, 2, (6, 1, 4, 4)).float()
    probs = torch.sigmoid(logits.double()).clamp(1e-5, 1 - 1e-5)
    want = (x * probs.log() + (1 - x) * (1 - probs).log()).flatten(1).sum(1)
    got = build_option("likelihood", "bernoulli", data_shape=(1, 4, 4), prob_clamp=1e-5)(logits).log_prob(x)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-4)
    assert (
        build_option("likelihood", "bernoulli", data_shape=(1, 4, 4))(logits).log_prob(x).min() < want.min() - 10
    )  # unclamped: far more confident


def test_sampled_kl_option_uses_log_q_minus_log_p_at_the_sample():
    torch.manual_seed(0)
    data = tiny_data()
    model = VAE(
        build_option("architecture", "gated_mlp", "encoder", input_shape=data.shape, latent_dim=3, hidden=[8]),
        build_option("architecture", "gated_mlp", "decoder", output_shape=data.shape, latent_dim=3, hidden=[8]),
        GaussianPrior(3),
        build_option("likelihood", "bernoulli", data_shape=data.shape),
    )
    x = data.train.floats(slice(0, 16))
    eps = torch.randn(1, 16, 3)
    terms = build_option("objective", "elbo", analytic_kl=False)(model, x, noise=lambda k, d: eps)
    q = model.posterior(x)
    z = q.base_dist.loc + q.base_dist.scale * eps[0]
    torch.testing.assert_close(terms["kl"], q.log_prob(z) - model.prior.log_prob(z))
    closed = build_option("objective", "elbo")(model, x, noise=lambda k, d: eps)["kl"]
    torch.testing.assert_close(closed, td.kl_divergence(q, model.prior.distribution()))


# ---------------------------------------------------------------------------------------------- optimizer
def reference_adam_normgrad(params, grads_per_step, lr, betas=(0.9, 0.999), eps=1e-8, norm_eps=1e-7):
    """The VampPrior code's update written out: g / (||g|| + 1e-7), then Adam with bias corrections."""
    params = [p.clone() for p in params]
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            g = g / (g.norm() + norm_eps)
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            m_hat, v_hat = m[i] / (1 - betas[0] ** t), v[i] / (1 - betas[1] ** t)
            params[i] = params[i] - lr * m_hat / (v_hat.sqrt() + eps)
    return params


def test_adam_normgrad_matches_the_reference_update():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(30, 20)), torch.nn.Parameter(torch.randn(7))]
    start = [p.detach().clone() for p in params]
    grads = [[torch.randn_like(p) * s for p, s in zip(params, (100.0, 0.01))] for _ in range(5)]
    opt = build_option("optimizer", "adam_normgrad", params=params, lr=5e-4)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        opt.step()
    for got, want in zip(params, reference_adam_normgrad(start, grads, 5e-4)):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-6)


def test_optimizer_group_builds_the_named_class(tmp_path, no_threads):
    for name, cls in (("adam", Adam), ("adam_normgrad", AdamNormGrad)):
        cfg = make_cfg(f"optimizer={name}", "trainer.lr=0.002")
        trainer = build.make_trainer(cfg, tmp_path / name)
        assert type(trainer.optimizer) is cls and trainer.optimizer.param_groups[0]["lr"] == 0.002
        trainer.logger.close()


# ------------------------------------------------------------------------------- warm-up, early stopping
def test_per_epoch_warmup_is_the_reference_schedule():
    # reference: beta = e / 100 in epoch e = 1, 2, ... (progress epoch counts finished epochs, fractional)
    for finished, fraction, want in ((0, 0.0, 0.01), (0, 0.99, 0.01), (1, 0.5, 0.02), (99, 0.3, 1.0), (500, 0, 1.0)):
        assert warmup_weight(1.0, 0.0, 100, 0, finished + fraction, 0, per_epoch=True) == pytest.approx(want)
    assert warmup_weight(1.0, 0.0, 100, 0, 0.5, 0, per_epoch=False) == pytest.approx(0.005)
    assert (
        build_option("objective", "elbo", warmup_epochs=100, warmup_per_epoch=True).first_full_weight_epoch(500) == 100
    )
    assert build_option("objective", "elbo", warmup_steps=1250).first_full_weight_epoch(500) == 3
    assert build_option("objective", "elbo").first_full_weight_epoch(500) == 0


@pytest.mark.parametrize(
    "warmup,best,epoch,stops",
    [
        (0, 3, 5, True),
        (0, 3, 4, False),  # no warm-up: counted from the best epoch, as before
        (10, 1, 9, False),
        (10, 1, 10, False),
        (10, 1, 11, True),  # warm-up: counted from epoch 10 (first at beta)
        (10, 12, 13, False),
        (10, 12, 14, True),
    ],
)  # after warm-up: from the best epoch again
def test_early_stopping_counts_from_the_end_of_warmup(warmup, best, epoch, stops, tmp_path, no_threads):
    cfg = make_cfg(
        "trainer.early_stopping=2",
        f"objective.warmup_epochs={warmup}",
        f"objective.warmup_per_epoch={str(warmup > 0).lower()}",
    )
    trainer = build.make_trainer(cfg, tmp_path)
    trainer.best_epoch, trainer.epoch = best, epoch
    assert trainer.patience_exhausted() is stops
    trainer.logger.close()


def test_warmup_per_epoch_needs_warmup_epochs(tmp_path):
    with pytest.raises(UserError, match="warmup_per_epoch=true needs objective.warmup_epochs"):
        run.train(make_cfg("objective.warmup_per_epoch=true"), tmp_path)


# -------------------------------------------------------------------------------------------- VampPrior
def test_vampprior_reference_init_clips_noise_to_the_unit_interval():
    torch.manual_seed(0)
    data = tiny_data()
    encoder = build_option("architecture", "gated_mlp", "encoder", input_shape=data.shape, latent_dim=3, hidden=[8])
    prior = build_option("prior", "vamp", latent_dim=3, encoder=encoder, data=data, n_components=500, init="reference")
    u = prior.pseudo_inputs()
    assert u.shape == (500, *data.shape) and u.min() >= 0 and u.max() <= 1
    assert u.mean().item() == pytest.approx(0.05, abs=0.001) and u.std().item() == pytest.approx(0.01, rel=0.05)
    prior.log_prob(torch.randn(4, 3)).sum().backward()
    assert prior.pseudo_inputs.raw.grad.abs().sum() > 0  # inside [0, 1] the clip passes gradients
    real = DataSplits(*(Split(torch.randn(10, 2)) for _ in range(3)), in_unit_range=False)
    with pytest.raises(UserError, match="prior.init=reference"):
        build_option(
            "prior",
            "vamp",
            latent_dim=3,
            encoder=build_option("architecture", "gated_mlp", "encoder", input_shape=(2,), latent_dim=3, hidden=[8]),
            data=real,
            n_components=4,
            init="reference",
        )


# ------------------------------------------------------------------------------------ data and binarisation
def test_split_seed_null_takes_validation_from_the_end_of_the_file(data_root):
    shuffled = build_option("dataset", "mnist", root=str(data_root), val_size=20, split_seed=0)
    tail = build_option("dataset", "mnist", root=str(data_root), val_size=20, split_seed=None)
    from vae_runner.data.torchvision_sets import read_idx

    raw = torch.from_numpy(read_idx(data_root / "MNIST" / "raw" / "train-images-idx3-ubyte").copy())
    assert torch.equal(tail.val.x[:, 0], raw[-20:]) and torch.equal(tail.train.x[:, 0], raw[:-20])
    assert not torch.equal(shuffled.val.x, tail.val.x)


def test_eval_binarisation_is_the_reference_numpy_draw_made_on_the_cpu(monkeypatch):
    digits = build_option("dataset", "digits")
    got = prepare(digits, "dynamic", torch.device("cpu"))
    rng = np.random.RandomState(777)  # the reference: np.random.seed(777); binomial(1, x_val); binomial(1, x_test)
    assert digits.val.x.dtype == torch.float32  # digits are grey levels in [0, 1]: p is their float64 value
    want_val = rng.binomial(1, digits.val.x.double().numpy())
    want_test = rng.binomial(1, digits.test.x.double().numpy())
    images = Split(torch.randint(0, 256, (30, 1, 4, 4), dtype=torch.uint8))  # uint8 images: p = x / 255 in float64
    assert np.array_equal(
        data_module.binarize_once(images, 3).x.numpy(), np.random.RandomState(3).binomial(1, images.x.numpy() / 255.0)
    )
    assert np.array_equal(got.val.x.numpy(), want_val) and np.array_equal(got.test.x.numpy(), want_test)
    # A stored hash of the binary digits test set: any change of generator, order or device path breaks it.
    digest = hashlib.sha256(got.test.x.numpy().astype(np.uint8).tobytes()).hexdigest()
    assert digest == DIGITS_TEST_SHA256
    # On another device the draw is made before the move, on the CPU.
    seen = []
    real = data_module.binarize_once
    monkeypatch.setattr(data_module, "binarize_once", lambda s, r: seen.append(s.x.device.type) or real(s, r))
    prepare(digits, "dynamic", torch.device("meta"))
    assert seen == ["cpu", "cpu"]


DIGITS_TEST_SHA256 = "cf02de1b06d2e1e839217afc7e4a6dcc5059585583364eb9cc237bb4f85decbd"


# ------------------------------------------------------------------------------------------- evaluation
def small_model(seed=0):
    torch.manual_seed(seed)
    data = prepare(build_option("dataset", "digits"), "dynamic", torch.device("cpu"))
    model = VAE(
        build_option("architecture", "gated_mlp", "encoder", input_shape=data.shape, latent_dim=4, hidden=[32]),
        build_option("architecture", "gated_mlp", "decoder", output_shape=data.shape, latent_dim=4, hidden=[32]),
        GaussianPrior(4),
        build_option("likelihood", "bernoulli", data_shape=data.shape),
    )
    return model, data


def test_log_likelihood_per_image_does_not_depend_on_chunking(no_threads):
    model, data = small_model()
    runs = [log_likelihood(model, data.test, k=300, chunk_rows=c, seed=5, limit=50) for c in (50, 299, 1000, 7000)]
    for other in runs[1:]:
        torch.testing.assert_close(other, runs[0], rtol=0, atol=2e-4)
    first = log_likelihood(model, Split(data.test.x[10:11]), k=300, chunk_rows=50, seed=5)
    assert first.shape == (1,)  # a different image index gets different noise ...
    assert not torch.allclose(first, runs[0][10:11], atol=1e-3)
    assert not torch.allclose(log_likelihood(model, data.test, k=300, seed=6, limit=50), runs[0], atol=1e-3)


def test_evaluated_elbo_does_not_depend_on_the_batch_size(no_threads):
    model, data = small_model()
    values = [evaluate_split(model, build_option("objective", "elbo"), data.test, b, seed=3) for b in (1000, 37, 7)]
    for other in values[1:]:
        assert other == pytest.approx(values[0], abs=1e-4)


def test_index_noise_is_standard_normal_and_batching_free():
    e = index_noise(0, 1, torch.arange(500), range(200), 8)  # (200, 500, 8)
    assert abs(e.mean().item()) < 0.01 and e.var().item() == pytest.approx(1.0, abs=0.01)
    assert (e**4).mean().item() == pytest.approx(3.0, abs=0.05)
    torch.testing.assert_close(
        index_noise(0, 1, torch.arange(40, 60), range(100, 150), 8), e[100:150, 40:60], rtol=0, atol=0
    )

    def f(a, b):
        return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].abs().item()

    assert (
        max(
            f(e[..., 0], e[..., 1]),
            f(e[:, :-1], e[:, 1:]),
            f(e[:-1], e[1:]),
            f(e, index_noise(1, 1, torch.arange(500), range(200), 8)),
            f(e, index_noise(0, 2, torch.arange(500), range(200), 8)),
        )
        < 0.01
    )


def test_int32_hash_equals_unsigned_32_bit_arithmetic():
    from vae_runner.rng import fmix32_

    x = torch.randint(0, 2**32, (10000,))
    m = 0xFFFFFFFF
    ref = x ^ (x >> 16)
    ref = (ref * 0x85EBCA6B) & m
    ref = ref ^ (ref >> 13)
    ref = (ref * 0xC2B2AE35) & m
    ref = ref ^ (ref >> 16)
    assert torch.equal(fmix32_(x.to(torch.int32)).long() & m, ref)


def test_kl_per_dim_uses_the_closed_form_for_the_gaussian_prior():
    torch.manual_seed(0)
    mu, logvar = torch.randn(200, 5), torch.randn(200, 5)
    got = dx.mean_kl_per_dim(GaussianPrior(5), DiagonalGaussian(mu, logvar), samples=1)
    q = td.Normal(mu, torch.exp(0.5 * logvar))
    want = td.kl_divergence(q, td.Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(got, want)
    total = td.kl_divergence(td.Independent(q, 1), td.Independent(td.Normal(torch.zeros(5), 1.0), 1)).mean()
    assert got.sum().item() == pytest.approx(total.item(), rel=1e-6)


def test_every_protocol_preset_composes_the_reference_settings():
    cfg = make_cfg("experiment=ll_fashion_mnist_vamp", shrink=False)
    assert (cfg.latent_dim, cfg.trainer.batch_size, cfg.trainer.lr, cfg.trainer.epochs) == (40, 100, 5e-4, 2000)
    assert cfg.optimizer._target_.endswith("AdamNormGrad") and list(cfg.architecture.logvar_clamp) == [-6, 2]
    assert cfg.prior.init == "reference" and cfg.prior.n_components == 500 and cfg.dataset.split_seed is None
    assert (cfg.prior.init_mean, cfg.prior.init_std) == (0.0, pytest.approx(math.sqrt(2 / 500), rel=1e-5))
    assert cfg.likelihood.prob_clamp == 1e-5 and not cfg.objective.analytic_kl
    assert cfg.objective.warmup_epochs == 100 and cfg.objective.warmup_per_epoch
    assert cfg.evaluation.iw_samples == 5000 and cfg.dataset.binarize.value == "dynamic"
    assert make_cfg("experiment=ll_mnist_gaussian", shrink=False).dataset.name == "mnist"

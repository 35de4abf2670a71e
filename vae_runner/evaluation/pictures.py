"""Pictures as (3, H, W) float tensors in [0, 1]: samples, inputs above reconstructions, what the prior learnt
(component means, pseudo-inputs, the GTM manifold), for 2 latent dimensions the prior's density under the
encoded test points (the hole-problem picture), latent traversals and interpolations, a 2-D scatter of the posterior
means (PCA beyond 2 dimensions) and the KL per latent dimension; 2-D point data is drawn as scatter plots, a
table's rows as one histogram per column."""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from vae_runner.data.modalities import as_images
from vae_runner.rng import seeded


def image_grid(x: Tensor, nrow: int = 8, min_side: int = 32) -> Tensor:
    """Images (N, C, H, W) in a grid; small images are enlarged (nearest neighbour) to at least `min_side` pixels;
    missing pixels (NaN) are grey."""
    x = torch.nan_to_num(x.detach().float(), nan=0.5).clamp(0, 1).cpu()
    scale = -(-min_side // min(x.shape[-2:]))
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    return tile(x, nrow)


def tile(x: Tensor, nrow: int, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """Images (N, C, H, W) -> (3, H', W'): rows of `nrow`, `padding` pixels of `pad_value` between them and around
    the edge (torchvision's make_grid layout: one image comes back as it is; grey images become RGB)."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if len(x) == 1:
        return x[0]
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    cells = F.pad(x, (padding, 0, padding, 0), value=pad_value)  # each image with its top and left border
    cells = torch.cat([cells, cells.new_full((rows * cols - n, *cells.shape[1:]), pad_value)])  # the last row's gap
    grid = cells.reshape(rows, cols, c, h + padding, w + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(c, rows * (h + padding), cols * (w + padding))
    return F.pad(grid, (0, padding, 0, padding), value=pad_value)  # the bottom and right edge


def recon_grid(inputs: Tensor, recons: Tensor, nrow: int = 8) -> Tensor:
    """Rows of `nrow` inputs, each directly above the row of their reconstructions; each row labelled on the left."""
    rows = []
    for i in range(0, len(inputs), nrow):
        rows += [inputs[i : i + nrow], recons[i : i + nrow]]
    return label_rows(image_grid(torch.cat(rows), nrow=nrow), ["input", "recon."] * (len(rows) // 2))


def label_rows(grid: Tensor, labels: list[str], width: int = 56) -> Tensor:
    """`grid` (3, H, W) with a white strip (>= width, as wide as a label needs) on its left, a label per row."""
    from PIL import ImageDraw

    h, measure = grid.shape[1], ImageDraw.Draw(Image.new("RGB", (1, 1)))
    strip = Image.new("RGB", (max([width, *(int(measure.textlength(t)) + 8 for t in labels)]), h), "white")
    draw = ImageDraw.Draw(strip)
    row = h / max(1, len(labels))
    for i, text in enumerate(labels):
        draw.text((3, i * row + row / 2), text, fill="black", anchor="lm")
    strip = torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1).float() / 255.0
    return torch.cat([strip, grid], dim=2)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_tensor(fig) -> Tensor:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    img = np.asarray(Image.open(buf).convert("RGB"))  # (H, W, 3) uint8
    return torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 255.0


def scatter(points: dict[str, Tensor], title: str) -> Tensor:
    """2-D point clouds (name -> (N, 2)) drawn with matplotlib, as an image tensor."""
    fig, ax = _pyplot().subplots(figsize=(4.5, 4.5), dpi=100)
    for (name, p), colour in zip(points.items(), ("0.7", "tab:red", "tab:blue")):
        p = p.detach().float().cpu().numpy()
        ax.scatter(p[:, 0], p[:, 1], s=4, alpha=0.6, c=colour, label=name)
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="upper right", markerscale=3)
    return _figure_tensor(fig)


def column_histograms(points: dict[str, Tensor], names, title: str, limit: int = 16) -> Tensor:
    """A table's point clouds (name -> (N, F)) as one histogram per column (the first `limit`), each named, the
    clouds overlaid (NaN entries left out): how a table's samples or reconstructions compare, column by column."""
    shown = min(limit, len(names))
    cols = min(4, shown)
    rows = -(-shown // cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), dpi=100, squeeze=False)
    clouds = {name: p.detach().float().cpu().numpy() for name, p in points.items()}
    for j, ax in enumerate(axes.flat):
        if j >= shown:
            ax.set_visible(False)
            continue
        values = [c[:, j][np.isfinite(c[:, j])] for c in clouds.values()]
        bins = np.histogram_bin_edges(np.concatenate(values), bins=20) if any(len(v) for v in values) else 20
        for (name, v), colour in zip(zip(clouds, values), ("0.6", "tab:red", "tab:blue")):
            ax.hist(v, bins=bins, density=True, alpha=0.55, color=colour, label=name)
        ax.set_title(str(names[j]), fontsize=9)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{title}{'' if shown == len(names) else f' (first {shown} of {len(names)} columns)'}", fontsize=10)
    fig.tight_layout()
    return _figure_tensor(fig)


def point_picture(data, points: dict[str, Tensor], title: str) -> Tensor:
    """Points of 2-D data as a scatter; a table's (named columns) as per-column histograms."""
    if data.columns is not None and len(data.columns) > 2:
        return column_histograms(points, data.columns, title)
    return scatter(points, title)


def labelled_scatter(ax, points, y: Tensor | None, classes, size: float, **style) -> None:
    """2-D points on `ax`, one colour per label with the class's name in a legend beside the axes (the label number
    where the dataset has no names); one colour when there are no labels."""
    points = np.asarray(points)
    if y is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, c="tab:cyan", **style)
        return
    y = y.detach().cpu().numpy()
    colours = _pyplot().get_cmap("tab10" if y.max() < 10 else "tab20")
    for c in np.unique(y):
        name = classes[c] if classes is not None and c < len(classes) else str(c)
        chosen = points[y == c]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=size, color=colours(int(c) % colours.N), label=name, **style)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, markerscale=2.5, frameon=False)


@torch.no_grad()
def latent_density_picture(model, data, n_points: int = 2000, resolution: int = 160) -> Tensor:
    """For latent_dim = 2: the prior's density as a heat map, the encoded test points (posterior means, coloured by
    class, white-edged so they stand out on the map) on top. Where the prior is bright and no point lies is a hole."""
    x = data.test.floats(slice(0, n_points))
    mu = model.posterior(x).mean  # (N, 2)
    lo = torch.minimum(mu.min(0).values, torch.full((2,), -3.0, device=mu.device))
    hi = torch.maximum(mu.max(0).values, torch.full((2,), 3.0, device=mu.device))
    lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    axes = [torch.linspace(lo[i].item(), hi[i].item(), resolution, device=mu.device) for i in range(2)]
    gy, gx = torch.meshgrid(axes[1], axes[0], indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)  # (R*R, 2)
    log_prior = model.prior.log_prob_fn()  # the prior's parameters once, not per chunk
    logp = torch.cat([log_prior(c) for c in pts.split(4096)]).view(resolution, resolution)
    fig, ax = _pyplot().subplots(figsize=(5, 4.5), dpi=100)
    im = ax.imshow(
        logp.exp().cpu().numpy(),
        origin="lower",
        cmap="magma",
        aspect="auto",
        extent=[lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()],
    )
    fig.colorbar(im, ax=ax, label="p(z)", location="left")
    y = data.test.y[:n_points] if data.test.y is not None else None
    labelled_scatter(ax, mu.cpu().numpy(), y, data.classes, size=9, edgecolors="white", linewidths=0.3)
    ax.set_title(f"prior density and encoded test points ({type(model.prior).__name__})")
    return _figure_tensor(fig)


@torch.no_grad()
def sample_picture(model, data, n: int) -> Tensor:
    if (images := as_images(data, model.sample(n))) is not None:
        return image_grid(images)
    samples = model.sample(max(n, 500))  # a point cloud needs more than a grid's worth to show its shape
    return point_picture(data, {"test data": data.test.floats()[:2000], "samples": samples}, "samples from the prior")


@torch.no_grad()
def recon_picture(model, data, n: int) -> Tensor:
    x = data.test.floats(slice(0, n))
    recons = model.reconstruct(x)
    if data.is_image or data.modalities:
        return recon_grid(as_images(data, x), as_images(data, recons))
    return point_picture(data, {"inputs": x, "reconstructions": recons}, "test points and their reconstructions")


@torch.no_grad()
def prior_pictures(model, data) -> dict[str, Tensor]:
    """The prior's own pictures (`Prior.picture_batches`), and the latent density map when latent_dim = 2."""
    pictures = {}
    for name, (x, nrow) in model.prior.picture_batches(lambda z: model.decode(z).mean).items():
        pictures[name] = (
            image_grid(as_images(data, x), nrow=nrow)
            if data.is_image or data.modalities
            else point_picture(data, {"test data": data.test.floats()[:2000], name: x}, name.replace("_", " "))
        )
    if model.prior.latent_dim == 2:
        pictures["latent_density"] = latent_density_picture(model, data)
    return pictures


def log_pictures(model, data, logger, n_images: int, step: int, seed: int, prefix: str = "") -> None:
    """`samples` (from the model's own prior), `reconstructions` (test inputs above them) and the prior's pictures,
    drawn with a forked, fixed-seed RNG: the same z every time, and the training RNG stream is left alone.
    TensorBoard tags get `prefix` (prior pictures go under `prior/`); the PNGs in the run directory are named after
    the picture and always hold the latest."""
    was_training = model.training
    model.eval()
    with seeded(data.test.x.device, seed):
        logger.image(prefix + "samples", sample_picture(model, data, n_images), step, "samples.png")
        logger.image(
            prefix + "reconstructions", recon_picture(model, data, max(1, n_images // 2)), step, "reconstructions.png"
        )
        for name, img in prior_pictures(model, data).items():
            logger.image(f"{prefix or 'prior/'}{name}", img, step, f"{name}.png")
    model.train(was_training)


@torch.no_grad()
def traversal_picture(model, mu: Tensor, dims: list[int], steps: int, kl_per_dim=None, factors=None) -> Tensor:
    """A row per latent dimension (in the given order): the first test image's posterior mean with that dimension
    swept across the 2nd-98th percentile of its posterior means (+-3 for a dimension that does not vary). Each row
    is labelled with its dimension and, when given, that dimension's KL in nats and the generative factor it best
    explains (`z3 KL 2.41 pos_x`; `factors[d]`, "" for none)."""
    base = mu[0]
    rows = []
    for d in dims:
        lo, hi = torch.quantile(mu[:, d], torch.tensor([0.02, 0.98], device=mu.device)).tolist()
        if hi - lo < 1e-3:
            lo, hi = -3.0, 3.0
        z = base.repeat(steps, 1)  # (steps, D)
        z[:, d] = torch.linspace(lo, hi, steps, device=mu.device)
        rows.append(z)
    labels = [f"z{d}" + (f" KL {kl_per_dim[d]:.2f}" if kl_per_dim is not None else "") for d in dims]
    labels = [f"{label} {factors[d]}".rstrip() for label, d in zip(labels, dims)] if factors else labels
    return label_rows(image_grid(model.decode(torch.cat(rows)).mean, nrow=steps), labels, width=128 if factors else 84)


@torch.no_grad()
def interpolation_picture(model, x: Tensor, mu: Tensor, pairs: int = 8, steps: int = 10) -> Tensor:
    """A row per pair of test images: image a, decoded points on the line between their posterior means, image b."""
    pairs = min(pairs, len(x) // 2)
    t = torch.linspace(0, 1, steps, device=mu.device)[:, None]  # (steps, 1)
    rows = []
    for i in range(pairs):
        a, b = 2 * i, 2 * i + 1
        decoded = model.decode((1 - t) * mu[a] + t * mu[b]).mean  # (steps, *shape)
        rows.append(torch.cat([x[a : a + 1], decoded, x[b : b + 1]]))
    return image_grid(torch.cat(rows), nrow=steps + 2)


def latent_scatter_picture(mu: Tensor, y: Tensor | None, classes=None) -> Tensor:
    """Posterior means in 2-D (the first two principal components when latent_dim > 2), coloured by class (named in
    a legend where the dataset names them); with latent_dim = 1, the one coordinate against the label (or against
    the image index when there are no labels)."""
    mu = mu.detach().float().cpu()
    title = "posterior means"
    if mu.shape[1] == 1:
        other = y.detach().float().cpu() if y is not None else torch.arange(len(mu), dtype=torch.float32)
        mu = torch.cat([mu, other[:, None]], 1)
        title += " against the label" if y is not None else " against the image index"
    elif mu.shape[1] > 2:
        centred = mu - mu.mean(0)
        _, svals, v = torch.linalg.svd(centred, full_matrices=False)
        mu = centred @ v[:2].T
        share = (svals[:2] ** 2).sum() / (svals**2).sum().clamp_min(1e-30)
        title += f" (PCA: {100 * share:.0f}% of the variance)"
        mu = torch.cat([mu, torch.zeros(len(mu), 2 - mu.shape[1])], 1)  # one point has one component
    fig, ax = _pyplot().subplots(figsize=(5, 4.5), dpi=100)
    labelled_scatter(ax, mu.numpy(), y, classes, size=3, alpha=0.7, linewidths=0)
    ax.set_title(title)
    return _figure_tensor(fig)


def bar_picture(values: Tensor, title: str, ylabel: str) -> Tensor:
    fig, ax = _pyplot().subplots(figsize=(max(4.0, 0.25 * len(values) + 1), 3.2), dpi=100)
    ax.bar(range(len(values)), values.detach().cpu().numpy())
    ax.set_xlabel("latent dimension")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _figure_tensor(fig)


def heatmap_picture(matrix, rows: list[str], cols: list[str], title: str) -> Tensor:
    """A labelled heat map of `matrix` (len(rows), len(cols)), each cell's value written in it."""
    values = np.asarray(matrix, dtype=float)
    fig, ax = _pyplot().subplots(figsize=(1.0 + 0.9 * len(cols), 0.8 + 0.35 * len(rows)), dpi=100)
    ax.imshow(values, cmap="viridis", vmin=0.0, vmax=max(1e-9, values.max()), aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 * values.max() else "black")
    ax.set_title(title)
    return _figure_tensor(fig)

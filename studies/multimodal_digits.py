"""Issue 18's image + label measurement: a multimodal VAE (model/multimodal.py) on scikit-learn's digits (or, with
`--dataset fashion_mnist`, Fashion-MNIST from Debian's package), the image (binarised once, Bernoulli) and its label
(one-hot, categorical), for each joint posterior and seed:

- coherence label -> image: images generated from the label alone (z ~ q(z | label), the decoder's mean), classified
  by a logistic regression trained on the real training images (its accuracy on real test images is printed too);
- coherence image -> label: the decoded label's argmax from z ~ q(z | image) against the true label;
- conditional log-likelihoods, nats per test example, by importance sampling (K draws): log p(image | label) =
  log p(image, label) - log p(label), and log p(label | image) = log p(image, label) - log p(image).

With `--attributes`, a third, tabular modality with a known dependence: each image's ink (mean grey level) and the
ink's centre of mass (row, column), computed from the grey-level image and standardised (Gaussian likelihood with a
learned sigma per column); scored: the attributes imputed from the image, the label or both (RMSE), and
log p(attributes | image).

    python studies/multimodal_digits.py --joints poe moe mopoe --seeds 0 1 2 [--attributes] [--pictures DIR]

`--pictures DIR`: each run's grid of images generated from each label alone (DIR/<joint>_seed<seed>.png).

Training: Adam 1e-3, batch 64, `--epochs`, a linear KL warm-up over `--warmup` epochs (without it the model
collapses to the prior within a few epochs: KL 0.03 nats, the label ignored; with 20 of 60 epochs the product of
experts still collapsed at latent 16), each batch's encoder inputs with modalities hidden at `--dropout` (each
example keeps one), the likelihood scoring both.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from vae_runner.data import binarize_once
from vae_runner.data.digits import load_digits
from vae_runner.data.torchvision_sets import load_fashion_mnist
from vae_runner.model.decoders import MLPDecoder
from vae_runner.model.encoders import MLPEncoder
from vae_runner.model.likelihoods import Bernoulli, Categorical, Gaussian
from vae_runner.model.multimodal import MultimodalVAE

CLASSES = 10


def attributes(grey: torch.Tensor) -> torch.Tensor:
    """(N, 3) of the grey-level images (N, 1, H, W) in [0, 1]: ink (mean grey level) and the ink's centre of mass
    (row, column): a tabular modality that depends on the image, and through it on the label."""
    img = grey[:, 0]
    mass = img.sum((1, 2)).clamp(min=1e-6)
    at = torch.arange(float(img.shape[-1]))
    row, col = (img.sum(2) * at).sum(1) / mass, (img.sum(1) * at).sum(1) / mass
    return torch.stack([img.mean((1, 2)), row, col], dim=1)


def modalities(split, grey=None, scale=None) -> dict[str, torch.Tensor]:
    xs = {"image": split.x.flatten(1), "label": torch.nn.functional.one_hot(split.y, CLASSES).float()}
    if grey is not None:
        xs["attributes"] = (attributes(grey.floats()) - scale[0]) / scale[1]
    return xs


def load(name: str):
    """digits (70/10/20 %) or Fashion-MNIST (50k / 10k / 10k, from Debian's dataset-fashion-mnist folder)."""
    if name == "digits":
        return load_digits(0.1, 0.2, 0)
    return load_fashion_mnist("~/.cache/vae-runner/data", False, 10000, 0, ["/usr/share/datasets/fashion-mnist"])


def build(joint: str, latent: int, hidden: int, with_attributes: bool, pixels: int) -> MultimodalVAE:
    encoders = {"image": MLPEncoder((pixels,), latent, [hidden, hidden]), "label": MLPEncoder((CLASSES,), latent, [64])}
    decoders = {"image": MLPDecoder((pixels,), latent, [hidden, hidden]), "label": MLPDecoder((CLASSES,), latent, [64])}
    likelihoods = {"image": Bernoulli((pixels,), None), "label": Categorical((CLASSES,))}
    if with_attributes:
        encoders["attributes"], decoders["attributes"] = MLPEncoder((3,), latent, [64]), MLPDecoder((3,), latent, [64])
        likelihoods["attributes"] = Gaussian((3,), init_sigma=0.5, min_sigma=1e-3)
    return MultimodalVAE(encoders, decoders, likelihoods, latent_dim=latent, joint=joint)


def run(joint: str, seed: int, args) -> dict[str, float]:
    data = load(args.dataset)
    if args.test_limit:
        data.test = data.test.take(torch.arange(min(args.test_limit, len(data.test))))
    train, test = (binarize_once(s, 777 + i) for i, s in enumerate((data.train, data.test)))
    torch.manual_seed(seed)
    model = build(joint, args.latent, args.hidden, args.attributes, math.prod(data.shape))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_attributes = attributes(data.train.floats())
    scale = (train_attributes.mean(0), train_attributes.std(0)) if args.attributes else None
    grey = (data.train, data.test) if args.attributes else (None, None)
    xs, n = modalities(train, grey[0], scale), len(train)
    both = torch.ones(len(xs), n, dtype=torch.bool)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        beta = min(1.0, (epoch + 1) / args.warmup) if args.warmup else 1.0  # linear KL warm-up
        for idx in torch.randperm(n).split(args.batch):
            batch = {k: v[idx] for k, v in xs.items()}
            loss = model.elbo(batch, both[:, idx], beta=beta, dropout=args.dropout)["loss"].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    ts, m = modalities(test, grey[1], scale), len(test)
    present = torch.ones(len(ts), m, dtype=torch.bool)
    classifier = image_classifier(args.dataset, xs["image"], train.y)
    with torch.no_grad():
        torch.manual_seed(seed)
        images = model.generate(ts, present, ["label"], "image")
        labels = model.generate(ts, present, ["image"], "label").argmax(-1)
        joint_ll = model.log_marginal(ts, present, ["image", "label"], ["image", "label"], args.k)
        image_ll = model.log_marginal(ts, present, ["image"], ["image"], args.k)
        label_ll = model.log_marginal(ts, present, ["label"], ["label"], args.k)
        extra = attribute_scores(model, ts, present, args.k) if args.attributes else {}
        if args.pictures:
            label_picture(model, args.pictures / f"{args.dataset}_{joint}_seed{seed}.png", data.shape)
    return {
        "label->image coherence": float(np.mean(classifier.predict(images.numpy()) == test.y.numpy())),
        "image->label coherence": (labels == test.y).float().mean().item(),
        "log p(image|label)": (joint_ll - label_ll).mean().item(),
        "log p(label|image)": (joint_ll - image_ll).mean().item(),
        "log p(image)": image_ll.mean().item(),
        "classifier on real test images": float(classifier.score(ts["image"].numpy(), test.y.numpy())),
        **extra,
        "train seconds": seconds,
    }


def label_picture(model, path: Path, shape, per_label: int = 10) -> None:
    """A grid of images generated from each label alone: row c holds `per_label` draws z ~ q(z | label c)."""
    from torchvision.utils import save_image

    from vae_runner.evaluation.pictures import image_grid, label_rows

    labels = torch.arange(CLASSES).repeat_interleave(per_label)
    xs = {
        "image": torch.zeros(len(labels), math.prod(shape)),
        "label": torch.nn.functional.one_hot(labels, CLASSES).float(),
    }
    if "attributes" in model.names:
        xs["attributes"] = torch.zeros(len(labels), 3)
    present = torch.ones(len(model.names), len(labels), dtype=torch.bool)
    images = model.generate(xs, present, ["label"], "image").view(-1, *shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(label_rows(image_grid(images, nrow=per_label), [str(c) for c in range(CLASSES)]), path)


def attribute_scores(model, ts, present, k: int) -> dict[str, float]:
    """The attributes imputed from the image, from the label and from both (RMSE in standardised units: predicting
    the mean scores ~1), and log p(attributes | image) = log p(image, attributes) - log p(image)."""
    out = {}
    for given in (["image"], ["label"], ["image", "label"]):
        imputed = model.generate(ts, present, given, "attributes")
        out[f"attributes RMSE from {'+'.join(given)}"] = (imputed - ts["attributes"]).pow(2).mean().sqrt().item()
    both = model.log_marginal(ts, present, ["image", "attributes"], ["image", "attributes"], k)
    out["log p(attributes|image)"] = (both - model.log_marginal(ts, present, ["image"], ["image"], k)).mean().item()
    return out


CLASSIFIERS: dict = {}


def image_classifier(name: str, images: torch.Tensor, labels: torch.Tensor) -> LogisticRegression:
    """A logistic regression on the first 10,000 binarised training images (all of digits'), fitted once per dataset
    (the binarisation is fixed, so every run's is the same)."""
    if name not in CLASSIFIERS:
        fit = slice(0, 10000)
        CLASSIFIERS[name] = LogisticRegression(max_iter=2000).fit(images[fit].numpy(), labels[fit].numpy())
    return CLASSIFIERS[name]


def cell(values: list[float]) -> str:
    return f"{values[0]:.3f}" if len(values) == 1 else f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits", choices=["digits", "fashion_mnist"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--test-limit", type=int, default=None, help="score the first N test examples only")
    parser.add_argument("--joints", nargs="+", default=["poe", "moe", "mopoe"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=100, help="epochs of linear KL warm-up (0: none)")
    parser.add_argument("--dropout", type=float, default=0.5, help="modality dropout of the encoder's inputs")
    parser.add_argument("--attributes", action="store_true", help="a third, tabular modality: ink and its centre")
    parser.add_argument("--pictures", type=Path, help="a folder for each run's images generated from each label")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test example")
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = None
    for joint in args.joints:
        rows = [run(joint, seed, args) for seed in args.seeds]
        if header is None:
            header = list(rows[0])
            print("| joint posterior | " + " | ".join(header) + " |")
            print("|---|" + "---|" * len(header))
        print(f"| {joint} | " + " | ".join(cell([r[k] for r in rows]) for k in header) + " |", flush=True)


if __name__ == "__main__":
    main()

"""What a trained model is worth (the `evaluation` config group): `metrics` (split ELBO terms and the
importance-sampled log-likelihood), `diagnostics` (collapse, holes, representation quality), `pictures` (every
figure as a tensor) and `final` (the end-of-run report that writes them all)."""

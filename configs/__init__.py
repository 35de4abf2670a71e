"""vae-runner's Hydra configs, shipped as package data (vae_runner.configs)."""

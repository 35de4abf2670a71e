"""Sweeps (`vae-run -m`): job names, the end-of-sweep summary, launcher checks, the Slurm watch (Hydra callbacks)."""

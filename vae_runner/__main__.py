"""`python -m vae_runner ...` is `vae-run ...`."""

from vae_runner.cli import main

main()

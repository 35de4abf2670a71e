"""vae-runner: a config-driven experiment runner for variational autoencoders.

Data flow: cli.py -> run.py (train / evaluate / sample / impute) -> build.py (config/ -> data/ -> model/ ->
objectives.py, optimizers.py) -> training/ (the loop) or stacking/ (a sweep as one stack) -> evaluation/ (metrics,
diagnostics, pictures, the final report) and imputation/; runs/ owns the run directory and its checkpoints, loggers/
what a run logs. Around them: sweeps/ (Hydra callbacks), report/ (vae-report), host/ (threads, CPU, signals).
docs/layout.md lists every folder and file.
"""

__version__ = "0.1.0"

__all__ = ["Run", "impute_file", "load", "pool", "train"]


def __getattr__(name: str):
    """`vae_runner.load`, `train`, `impute_file`, `Run` (api.py) and `vae_runner.pool` (imputation/pooling.py:
    Rubin's rules), imported on first use: `vae-run --help` and `vae-report` do not pay for torch."""
    if name == "pool":
        from vae_runner.imputation.pooling import pool

        return pool
    if name in __all__:
        from vae_runner import api

        return getattr(api, name)
    raise AttributeError(f"module 'vae_runner' has no attribute {name!r}")

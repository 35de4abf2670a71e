"""vae-runner: a config-driven experiment runner for variational autoencoders.

Data flow: cli.py -> run.py (train / evaluate) -> build.py (config/ -> data/ -> model/ -> objectives.py,
optimizers.py) -> trainer.py -> evaluation/ (metrics, diagnostics, pictures, final report); rundir.py owns the run
directory, checkpoint.py its checkpoints, tb_logger.py its TensorBoard events. README.md "Layout" lists every file.
"""

__version__ = "0.1.0"

__all__ = ["Run", "load", "pool", "train"]


def __getattr__(name: str):
    """`vae_runner.load`, `vae_runner.train`, `vae_runner.Run` (api.py) and `vae_runner.pool` (pooling.py: Rubin's
    rules), imported on first use: `vae-run --help` and `vae-report` do not pay for torch."""
    if name == "pool":
        from vae_runner.pooling import pool

        return pool
    if name in __all__:
        from vae_runner import api

        return getattr(api, name)
    raise AttributeError(f"module 'vae_runner' has no attribute {name!r}")

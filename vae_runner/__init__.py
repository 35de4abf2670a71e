"""vae-runner: a config-driven experiment runner for variational autoencoders.

Data flow: cli.py -> run.py (train / evaluate) -> build.py (config/ -> data/ -> model/ -> objectives.py,
optimizers.py) -> trainer.py -> evaluation/ (metrics, diagnostics, pictures, final report); rundir.py owns the run
directory, checkpoint.py its checkpoints, tb_logger.py its TensorBoard events. README.md "Layout" lists every file.
"""

__version__ = "0.1.0"

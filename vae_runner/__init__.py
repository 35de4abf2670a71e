"""vae-runner: a config-driven experiment runner for variational autoencoders.

Data flow: config (config.py) -> data (data/) -> model (model/: encoders, decoders, priors, likelihoods, vae)
-> objective (objectives.py) -> trainer (trainer.py) -> logger (logging.py, viz.py); run.py wires them.
"""

__version__ = "0.1.0"

"""The training loop of one run: the Trainer, when it checkpoints (cadence), its running step metrics."""

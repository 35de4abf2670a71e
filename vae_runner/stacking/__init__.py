"""A sweep trained as one process (hydra/launcher=batched): the launcher, the stacked model, its optimizer, loop and
validation; a member writes the run directory a run trained alone would."""

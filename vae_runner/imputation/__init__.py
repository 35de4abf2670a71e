"""Missing values filled by a trained model: its importance-weighted imputations, the baselines they are compared
with, mode=impute on a CSV table, and Rubin's rules for pooling an analysis over the imputations."""

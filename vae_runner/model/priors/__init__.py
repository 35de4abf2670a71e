"""Priors p(z), one file each, all following the contract of `base.Prior`."""

"""The `posterior=` options (configs/posterior/): q(z|x) families behind one contract (base.py)."""

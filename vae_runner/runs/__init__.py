"""A run on disk: the run directory's files, its checkpoints, and a saved run met again (resume, ckpt=)."""

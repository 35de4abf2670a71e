"""The run's configuration: `schema` (typed dataclasses, registered with Hydra), `checks` (value checks before any
data is read) and `plain` (plain containers and dotted keys, for checkpoints, comparisons and HParams)."""

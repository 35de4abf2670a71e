"""The machine a run is on: CPU threads, CPU features (does bf16 pay), stop signals."""

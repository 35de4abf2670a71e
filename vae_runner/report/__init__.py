"""vae-report: one table, CSV and plot of many runs, read from their run directories only."""

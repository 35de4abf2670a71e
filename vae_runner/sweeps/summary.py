"""The end of a sweep (`vae-run -m ...`): vae-report's table of its runs (report.md, report.csv and the plot written
into the sweep directory) and where the sweep is. A Hydra callback, registered in configs/train.yaml."""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        from vae_runner.report import table

        sweep = Path(config.hydra.sweep.dir).resolve()
        if not sweep.is_dir():
            return
        print(f"\nsweep directory: {sweep}")
        try:
            table.main([str(sweep)])
        except Exception as err:  # noqa: BLE001 - the runs are done; a failed summary must not fail the sweep
            print(f"vae-run: the sweep's summary table failed ({type(err).__name__}: {err}); try vae-report {sweep}")

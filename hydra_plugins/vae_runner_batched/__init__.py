"""Hydra's entry for vae-runner's batched launcher (`hydra/launcher=batched`): Hydra finds launchers only inside the
`hydra_plugins` package, so the class lives here and the work in vae_runner/stacking/launcher.py."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.vae_runner_batched.BatchedLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="vae-runner")


class BatchedLauncher(Launcher):
    """Runs a sweep's jobs that can train as one stack together, each stack in this process, then every job as the
    basic launcher does (a stacked member's job finds its trained run and evaluates it)."""

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides, initial_job_idx):
        from vae_runner.stacking.launcher import launch

        return launch(self, job_overrides, initial_job_idx)


def register() -> None:
    """Make `hydra/launcher=batched` known to Hydra also where its plugin scan cannot list our package (an editable
    install maps hydra_plugins.vae_runner_batched by name only)."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(BatchedLauncher)

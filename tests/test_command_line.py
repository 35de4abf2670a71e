"""vae-run's command line checked before Hydra starts: wrong options, unknown, added and deleted keys, values of the
wrong type, in single runs and in every value of a sweep, each one paragraph with the fix, exit status 2."""

import pytest
from conftest import vae_run

from vae_runner.config.command_line import problem


@pytest.mark.parametrize(
    "argv,says",
    [
        (["prior=vampprior"], ["prior=vampprior: no such option", "Did you mean vamp?", "gtm_vamp, mog, vamp"]),
        (["experiment=synthetic2d"], ["Did you mean synthetic_2d?"]),
        (["-m", "prior=gaussian,mogg"], ["prior=mogg", "Did you mean mog?"]),
        (["beta=four"], ["beta=four: Value 'four'", "Float"]),
        (["-m", "beta=1,four"], ["beta=four"]),  # the second value of a sweep
        (["prior=mog", "latent_dim=[1,2]"], ["latent_dim=[1,2]:", "Integer"]),
        (["trainer.epoch=3"], ["trainer.epoch is not a setting", "Did you mean trainer.epochs", "trainer.batch_size"]),
        (["prior=mog", "prior.n_component=3"], ["Did you mean prior.n_components?"]),
        (["trainer.foo.bar=1"], ["trainer.foo.bar is not a setting", "Settings of trainer:"]),
        (["-m", "prior=gaussian,mog", "prior.n_components=3"], ["not a setting of vae-run's config with prior="]),
        (["+trainer.epoch=3"], ["adds a key, which vae-run would accept and ignore", "trainer.epochs"]),
        (["+trainer.epochs=3"], ["without the +"]),
        (["~seed"], ["deletes a setting every run needs"]),
    ],
)
def test_a_bad_command_line_gets_one_paragraph_with_the_fix(argv, says):
    message = problem(argv)
    assert message is not None and "\n" not in message
    for part in says:
        assert part in message


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["prior=mog", "prior.n_components=3", "beta=4"],
        ["-m", "prior=gaussian,mog", "beta=1,4"],
        ["experiment=ll_fashion_mnist_vamp", "trainer.epochs=3"],
        ["-m", "hparams_search=digits_optuna"],
        ["hydra.run.dir=/tmp/x", "hydra/launcher=basic"],  # Hydra's own keys are Hydra's business
        ["--help"],
        ["--cfg", "job", "prior=mog"],
    ],
)
def test_a_good_command_line_passes(argv):
    assert problem(argv) is None


def test_vae_run_refuses_before_creating_anything(tmp_path):
    done = vae_run("prior=vampprior", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]  # one line, no traceback
    assert "Did you mean vamp?" in done.stderr and not (tmp_path / "outputs").exists()
    refused = vae_run("beta=-1", cwd=tmp_path)  # composes, but fails the value checks inside the run
    assert refused.returncode == 2 and "beta=-1.0 (must be a finite number >= 0)" in refused.stderr
    assert not (tmp_path / "outputs").exists()  # Hydra's run directory is removed again: nothing was run

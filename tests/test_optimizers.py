"""vae_runner.optimizers.Adam against its oracle, torch.optim.Adam(fused=True): the same parameters bit for bit after
many steps (groups with their own settings, weight decay, AMSGrad, AdamW), state_dicts that load in either
direction, and a training step that imports no torch._dynamo."""

import copy
import subprocess
import sys

import pytest
import torch

from vae_runner.optimizers import Adam, AdamNormGrad


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def _groups(model, **second):
    first, last = model[0], model[2]
    return [{"params": list(first.parameters())}, {"params": list(last.parameters()), **second}]


def _train(model, optimizer, steps: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 5, generator=g)
        optimizer.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        optimizer.step()


SETTINGS = [
    {},
    {"weight_decay": 0.1},
    {"amsgrad": True, "betas": (0.8, 0.99)},
    {"decoupled_weight_decay": True, "weight_decay": 0.05},
    {"maximize": True, "eps": 1e-6},
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_steps_equal_torch_fused_adam_bit_for_bit(settings):
    ours, theirs = _model(), _model()
    _train(ours, Adam(_groups(ours, lr=3e-3, betas=(0.5, 0.9)), lr=1e-2, **settings), 40)
    _train(theirs, torch.optim.Adam(_groups(theirs, lr=3e-3, betas=(0.5, 0.9)), lr=1e-2, fused=True, **settings), 40)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_state_dicts_load_in_either_direction_and_training_goes_on_alike():
    ours, theirs = _model(), _model()
    opt_ours = Adam(ours.parameters(), lr=1e-2, weight_decay=0.01)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-2, weight_decay=0.01, fused=True)
    _train(ours, opt_ours, 10)
    _train(theirs, opt_theirs, 10)
    saved_ours, saved_theirs = copy.deepcopy(opt_ours.state_dict()), copy.deepcopy(opt_theirs.state_dict())
    assert saved_ours["param_groups"] == saved_theirs["param_groups"]
    assert saved_ours["state"].keys() == saved_theirs["state"].keys()
    for i, entry in saved_ours["state"].items():
        for k, v in entry.items():
            assert v.dtype == saved_theirs["state"][i][k].dtype and torch.equal(v, saved_theirs["state"][i][k])
    # swap: each optimizer continues from the other's state, on a copy of the other's weights
    ours2, theirs2 = copy.deepcopy(theirs), copy.deepcopy(ours)
    opt_ours2, opt_theirs2 = Adam(ours2.parameters(), lr=0.5), torch.optim.Adam(theirs2.parameters(), fused=True)
    opt_ours2.load_state_dict(saved_theirs)
    opt_theirs2.load_state_dict(saved_ours)
    assert opt_ours2.param_groups[0]["lr"] == 1e-2  # the saved settings replace the constructor's, as in torch
    _train(ours2, opt_ours2, 10, seed=2)
    _train(theirs2, opt_theirs2, 10, seed=2)
    for a, b in zip(ours2.parameters(), theirs2.parameters()):
        assert torch.equal(a, b)


def test_adam_normgrad_normalises_each_tensor_then_steps_as_adam():
    model, oracle = _model(), _model()
    _train(model, AdamNormGrad(model.parameters(), lr=1e-2, norm_eps=1e-7), 1)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    oracle(x).pow(2).mean().backward()
    with torch.no_grad():
        for p in oracle.parameters():
            p.grad /= p.grad.norm() + 1e-7
    torch.optim.Adam(oracle.parameters(), lr=1e-2, fused=True).step()
    for a, b in zip(model.parameters(), oracle.parameters()):
        assert torch.equal(a, b)


def test_what_only_torch_s_other_adams_have_is_refused_naming_them():
    with pytest.raises(ValueError, match="optimizer._target_=torch.optim.Adam"):
        Adam(_model().parameters(), lr=1e-3, fused=False)


def test_training_with_it_imports_no_torch_dynamo():
    code = (
        "import sys, torch\nfrom vae_runner.optimizers import Adam\n"
        "m = torch.nn.Linear(3, 2)\nopt = Adam(m.parameters(), lr=1e-3)\n"
        "m(torch.randn(4, 3)).sum().backward()\nopt.step()\nopt.zero_grad()\nopt.load_state_dict(opt.state_dict())\n"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

"""The small torch helpers the attacks and the networks lean on at every batch."""

import torch

from sklearn_robust.nn import MLP, SmallCNN
from sklearn_robust.utils._torch import eval_mode, first_parameter


class _Frozen(torch.nn.Module):
    """A module whose ``train()`` keeps its batch norm in eval mode."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(4)
        self.fc = torch.nn.Linear(4, 2)

    def train(self, mode=True):
        super().train(mode)
        self.bn.eval()
        return self


def test_first_parameter_is_the_first_of_parameters():
    empty = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Identity())
    no_bias_first = torch.nn.Sequential(torch.nn.ReLU(),
                                        torch.nn.Linear(3, 3, bias=False))
    no_bias_first[1].register_parameter("extra", None)
    shared = torch.nn.Linear(2, 2)
    tied = torch.nn.Sequential(shared, torch.nn.Tanh(), shared)
    for module in [MLP((8,), 3), SmallCNN((1, 28, 28), 10), empty, no_bias_first,
                   tied, _Frozen(), torch.nn.Linear(2, 2).double()]:
        assert first_parameter(module) is next(module.parameters(), None)
    assert first_parameter(empty) is None


def test_eval_mode_restores_every_flag():
    model = torch.nn.Sequential(_Frozen(), torch.nn.Dropout(0.5))
    model.train()
    before = [m.training for m in model.modules()]
    assert before == [True, True, False, True, True]     # the frozen batch norm
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
    model.eval()
    with eval_mode(model):                        # already in eval mode
        assert not any(m.training for m in model.modules())
    assert not any(m.training for m in model.modules())
    model.train()
    try:
        with eval_mode(model):
            raise RuntimeError("in the body")
    except RuntimeError:
        pass
    assert [m.training for m in model.modules()] == before

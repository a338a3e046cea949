"""``train.ema_decay``: the weights' moving average, its arithmetic, and how the trainer uses it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from revkit.train.averaging import WeightAverage


class WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        self.register_buffer("state", torch.zeros(3, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


@settings(max_examples=40, deadline=None)
@given(decay=st.floats(0.01, 0.99),
       weights=st.lists(st.lists(st.floats(-100, 100), min_size=3, max_size=3), min_size=1, max_size=8))
def test_the_average_is_the_geometrically_weighted_sum_of_the_iterates(decay: float,
                                                                       weights: list[list[float]]) -> None:
    # a_n = d^n w_0 + Σ_{k=1..n} (1 − d) d^(n−k) w_k, for w_0 the weights it starts from
    module = WithBuffer()
    average = WeightAverage({"m": module}, decay)
    iterates = [torch.zeros(3, dtype=torch.float64)]
    for values in weights:
        with torch.no_grad():
            module.w.copy_(torch.tensor(values, dtype=torch.float64))
            module.state.add_(1.0)
        average.update()
        iterates.append(module.w.detach().clone())
    n = len(iterates) - 1
    expected = decay**n * iterates[0] + sum((1 - decay) * decay ** (n - k) * iterates[k] for k in range(1, n + 1))
    torch.testing.assert_close(average.average["m.w"], expected, rtol=1e-9, atol=1e-9)
    assert set(average.average) == {"m.w"}  # buffers are not averaged
    assert average.updates == n


def test_applied_puts_the_average_in_and_the_live_weights_back_even_after_an_error() -> None:
    module = WithBuffer()
    average = WeightAverage({"m": module}, 0.5)
    with torch.no_grad():
        module.w.fill_(4.0)
    average.update()  # 0.5·0 + 0.5·4
    with average.applied():
        assert torch.equal(module.w.detach(), torch.full((3,), 2.0, dtype=torch.float64))
    assert torch.equal(module.w.detach(), torch.full((3,), 4.0, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="inside"), average.applied():
        raise RuntimeError("inside")
    assert torch.equal(module.w.detach(), torch.full((3,), 4.0, dtype=torch.float64))
    average.copy_to()
    assert torch.equal(module.w.detach(), torch.full((3,), 2.0, dtype=torch.float64))


def test_a_saved_average_loads_back_and_one_of_another_model_is_refused() -> None:
    module = WithBuffer()
    average = WeightAverage({"m": module}, 0.9)
    with torch.no_grad():
        module.w.fill_(1.0)
    average.update()
    again = WeightAverage({"m": WithBuffer()}, 0.9)
    again.load_state_dict(average.state_dict())
    assert torch.equal(again.average["m.w"], average.average["m.w"]) and again.updates == 1
    with pytest.raises(ValueError, match=r"missing \['m.w'\], unexpected \['other.w'\]"):
        again.load_state_dict({"weights": {"other.w": torch.zeros(3)}})
    with pytest.raises(ValueError, match=r"m.w has shape \(4,\), this model's \(3,\)"):
        again.load_state_dict({"weights": {"m.w": torch.zeros(4)}})
    with pytest.raises(ValueError, match=r"ema_decay = 1.0 is not in \(0, 1\)"):
        WeightAverage({"m": module}, 1.0)

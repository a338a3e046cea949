"""The maximum-likelihood objective: bits/dim against closed forms, dequantization, continuous data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import Tensor

from revkit import Flow, Invertible
from revkit.data.base import DataInfo
from revkit.errors import RevkitError
from revkit.objectives import Losses, MaxLikelihood
from revkit.plugins import load_registries
from revkit.priors import Prior, StandardNormal

pytestmark = pytest.mark.usefixtures("float64")


class FixedAffine(Invertible):
    """Test block y = (x - shift) / scale elementwise; log|det| = -D log scale."""

    def __init__(self, shift: float, scale: float):
        super().__init__()
        self.shift, self.scale = shift, scale

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        d = x[0].numel()
        return (x - self.shift) / self.scale, self.zero_logdet(x) - d * math.log(self.scale)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        d = y[0].numel()
        return y * self.scale + self.shift, self.zero_logdet(y) + d * math.log(self.scale)


class UnitCube(Prior):
    """Test prior: the uniform density on [0, 1]^D (log p = 0 inside, -inf outside)."""

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        flat = z.reshape(z.shape[0], -1)
        inside = ((flat >= 0) & (flat <= 1)).all(dim=1)
        return torch.where(inside, 0.0, -math.inf).to(z.dtype)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        return torch.rand(n, *self.shape)


class StandardLogistic(Prior):
    """Test prior: independent standard logistic densities, log p(s) = -softplus(s) - softplus(-s)."""

    def _log_prob(self, z: Tensor, y: Tensor | None) -> Tensor:
        e = -torch.nn.functional.softplus(z) - torch.nn.functional.softplus(-z)
        return e.reshape(z.shape[0], -1).sum(dim=1)

    def _rsample(self, n: int, y: Tensor | None, temperature: float) -> Tensor:
        return torch.logit(torch.rand(n, *self.shape)) * temperature


def images(b: int, shape=(1, 3, 2), levels: int = 256) -> tuple[Tensor, Tensor]:
    k = torch.randint(0, levels, (b, *shape))
    return k / (levels - 1), torch.zeros(b, dtype=torch.long)


def objective_for(flow: Flow, levels: int | None, **params) -> MaxLikelihood:
    obj = MaxLikelihood(**params)
    obj.setup(flow, DataInfo(shape=flow.input_shape, classes=0, levels=levels, name="test"))
    return obj


def test_registered_and_declares_its_metric():
    regs = load_registries(entry_points=False)
    assert regs.objectives["max_likelihood"] is MaxLikelihood
    assert MaxLikelihood.main_metric == "bits_per_dim"
    assert MaxLikelihood.Params().dequantize == "uniform"
    with pytest.raises(ValueError):
        MaxLikelihood.Params(dequantize="gaussian")


def test_uniform_model_has_exactly_log2_levels_bits_per_dim():
    shape = (1, 3, 2)
    for levels in (2, 16, 256):
        flow = Flow([], shape, prior=UnitCube(shape))
        obj = objective_for(flow, levels)
        x = images(64, shape, levels)
        per_sample = obj.evaluate(flow, x)["bits_per_dim"]
        assert per_sample.shape == (64,)
        torch.testing.assert_close(per_sample, torch.full((64,), math.log2(levels)), rtol=1e-12, atol=0)


def test_logit_then_logistic_is_uniform_so_the_logit_jacobian_is_inside_log_prob():
    # logit pushes U[0,1] to the standard logistic, so this model is uniform on the unit cube
    from revkit.blocks.logit import Logit

    shape = (1, 3, 2)
    flow = Flow([Logit(shape, alpha=0.0)], shape, prior=StandardLogistic(shape))
    obj = objective_for(flow, 256)
    per_sample = obj.evaluate(flow, images(64, shape))["bits_per_dim"]
    torch.testing.assert_close(per_sample, torch.full((64,), 8.0), rtol=1e-9, atol=0)


def test_bits_per_dim_equals_the_closed_form_of_an_affine_gaussian_model():
    shape = (1, 3, 2)
    shift, scale = 0.4, 0.25
    flow = Flow([FixedAffine(shift, scale)], shape, prior=StandardNormal(shape))
    obj = objective_for(flow, 256)
    x = images(16, shape)
    torch.manual_seed(7)
    out = obj.losses(flow, x)
    torch.manual_seed(7)  # replay the same dequantization noise
    u = obj.dequantize(x[0]).numpy().reshape(16, -1)
    # u = shift + scale * z with z ~ N(0, 1): u ~ N(shift, scale²) per element
    log_p = stats.norm.logpdf(u, loc=shift, scale=scale).sum(axis=1)
    expected = (-log_p / 6 + math.log(256)) / math.log(2)
    assert isinstance(out, Losses)
    assert out.loss.item() == pytest.approx(expected.mean(), rel=1e-12)
    assert out.metrics == {"bits_per_dim": pytest.approx(expected.mean(), rel=1e-12)}


def test_dequantization_noise_lies_in_each_bin():
    flow = Flow([], (4, 8, 8), prior=StandardNormal((4, 8, 8)))
    for dtype in (torch.float32, torch.float64):
        for levels in (2, 256):
            obj = objective_for(flow, levels)
            k = torch.randint(0, levels, (50, 4, 8, 8)).to(dtype)
            u = obj.dequantize(k / (levels - 1))
            assert u.dtype == dtype
            assert (u >= k / levels).all() and (u < (k + 1) / levels).all()
            # and it really is noise: spread over the whole bin, not a constant offset
            offset = (u * levels - k).flatten()
            assert offset.min() < 0.01 and offset.max() > 0.99 and 0.45 < offset.mean() < 0.55


def test_dequantization_stays_below_the_bin_edge_even_when_the_noise_rounds_up(monkeypatch):
    flow = Flow([], (3,), prior=StandardNormal((3,)))
    obj = objective_for(flow, 256)
    monkeypatch.setattr(torch, "rand_like", lambda x: torch.full_like(x, 1 - 2**-24))
    u = obj.dequantize(torch.ones(2, 3, dtype=torch.float32))
    assert (u < 1).all() and (u >= 255 / 256).all()


def test_no_dequantization_uses_the_data_as_given():
    shape = (2,)
    flow = Flow([], shape, prior=StandardNormal(shape))
    obj = objective_for(flow, 256, dequantize="none")
    x = images(10, shape)
    torch.testing.assert_close(obj.dequantize(x[0]), x[0])
    expected = -stats.norm.logpdf(x[0].numpy()).sum(axis=1) / (2 * math.log(2))
    np.testing.assert_allclose(obj.evaluate(flow, x)["bits_per_dim"].numpy(), expected, rtol=1e-12)


def test_continuous_data_report_nats_per_dim_without_noise():
    shape = (2,)
    flow = Flow([FixedAffine(1.0, 2.0)], shape, prior=StandardNormal(shape))
    obj = objective_for(flow, None)
    assert obj.main_metric == "nll_per_dim"
    x = torch.randn(8, 2)
    batch = (x, torch.zeros(8, dtype=torch.long))
    expected = -stats.norm.logpdf(x.numpy(), loc=1.0, scale=2.0).sum(axis=1) / 2
    per_sample = obj.evaluate(flow, batch)
    assert set(per_sample) == {"nll_per_dim"}
    np.testing.assert_allclose(per_sample["nll_per_dim"].numpy(), expected, rtol=1e-12)
    out = obj.losses(flow, batch)
    assert out.metrics["nll_per_dim"] == pytest.approx(expected.mean(), rel=1e-12)


def test_loss_gradients_reach_the_prior():
    from revkit.priors import DiagonalGaussian

    shape = (1, 2, 2)
    flow = Flow([], shape, prior=DiagonalGaussian(shape))
    obj = objective_for(flow, 256)
    obj.losses(flow, images(8, shape)).loss.backward()
    assert flow.prior.mean.grad.abs().sum() > 0 and flow.prior.log_std.grad.abs().sum() > 0


def test_class_conditional_prior_receives_the_labels():
    from revkit.priors import ClassGaussian

    prior = ClassGaussian((2,), classes=2)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[-3.0, -3.0], [3.0, 3.0]]))
    flow = Flow([], (2,), prior=prior)
    obj = objective_for(flow, None)
    x = torch.full((1, 2), 3.0)
    right = obj.evaluate(flow, (x, torch.tensor([1])))["nll_per_dim"]
    wrong = obj.evaluate(flow, (x, torch.tensor([0])))["nll_per_dim"]
    torch.testing.assert_close(right, torch.full((1,), math.log(2 * math.pi) / 2))
    assert (wrong > right + 10).all()


def test_setup_checks_the_shape():
    flow = Flow([], (1, 28, 28), prior=StandardNormal((1, 28, 28)))
    with pytest.raises(RevkitError, match=r"flow takes per-sample shape \(1, 28, 28\) but the data 'mnist' "
                                          r"have shape \(1, 32, 32\)"):
        MaxLikelihood().setup(flow, DataInfo(shape=(1, 32, 32), classes=10, levels=256, name="mnist"))


def test_losses_before_setup_raise():
    flow = Flow([], (2,), prior=StandardNormal((2,)))
    with pytest.raises(RevkitError, match=r"call setup\(flow, data_info\)"):
        MaxLikelihood().losses(flow, (torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)))


def test_unknown_update_group_raises():
    flow = Flow([], (2,), prior=StandardNormal((2,)))
    obj = objective_for(flow, None)
    assert obj.update_order() == ["model"]
    with pytest.raises(RevkitError, match="only the group 'model', got 'critic'"):
        obj.losses(flow, (torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)), update="critic")

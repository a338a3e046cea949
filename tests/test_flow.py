"""The Flow: a multi-scale invertible network with a prior (encode, decode, log_prob, sample)."""

from __future__ import annotations

import math

import pytest
import torch

from revkit import Flow, RevkitError, Sequential
from revkit.blocks import ActNorm, AffineCoupling, Split, Squeeze
from revkit.priors import ClassGaussian, StandardNormal
from revkit.testing import check_block, perturb_parameters


def multiscale(shape: tuple[int, ...] = (1, 4, 4), hidden: int = 8, context_size: int = 0) -> Sequential:
    """Squeeze → coupling → Split(continuation: Squeeze → coupling), as the builder nests it."""
    squeezed = Squeeze(shape)
    s1 = squeezed.output_shape(shape)
    split = Split(s1)
    inner_squeeze = Squeeze(split.kept_shape)
    s2 = inner_squeeze.output_shape(split.kept_shape)
    split.attach(Sequential([inner_squeeze, AffineCoupling(s2, hidden=hidden, context_size=context_size)],
                            split.kept_shape))
    return Sequential([squeezed, AffineCoupling(s1, hidden=hidden, context_size=context_size),
                       ActNorm(s1), split], shape)


def fresh_flow(**kwargs) -> Flow:
    torch.manual_seed(0)
    net = multiscale(**kwargs)
    flow = Flow(net, (1, 4, 4), prior=StandardNormal((16,)))
    perturb_parameters(flow, std=0.2, seed=1)  # not the identity
    return flow


def test_a_multiscale_flow_conforms_to_the_block_contract():
    def factory(input_shape, hidden: int = 8):
        return multiscale(tuple(input_shape), hidden=hidden)

    check_block(factory, shapes=[(1, 4, 4), (2, 4, 4)], params={"hidden": 4}, max_examples=5)


def test_split_hands_factored_channels_to_the_latent_and_the_rest_continues():
    flow = fresh_flow()
    flow.eval()
    x = torch.rand(3, 1, 4, 4)
    z = flow.encode(x)
    assert z.shape == (3, 16)
    # the first 8 latent entries are the factored-out half after the first stage, untouched later
    stage1 = flow.net.layers[2](flow.net.layers[1](flow.net.layers[0](x)[0])[0])[0]
    assert torch.allclose(z[:, :8], stage1[:, 2:].reshape(3, -1), atol=1e-6)
    assert torch.allclose(flow.decode(z), x, atol=1e-5)


def test_log_prob_is_prior_density_of_the_code_plus_logdet():
    flow = fresh_flow().double().eval()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    z, logdet = flow(x)
    expected = -0.5 * (z**2).sum(1) - 8 * math.log(2 * math.pi) + logdet
    assert torch.allclose(flow.log_prob(x), expected, atol=1e-10)
    assert not torch.allclose(logdet, torch.zeros_like(logdet))


def test_sample_decodes_prior_draws_and_temperature_zero_gives_the_decoded_mean():
    flow = fresh_flow().eval()
    samples = flow.sample(5)
    assert samples.shape == (5, 1, 4, 4)
    cold = flow.sample(3, temperature=0.0)
    assert torch.allclose(cold, flow.decode(torch.zeros(3, 16)).expand(3, -1, -1, -1), atol=1e-6)


def test_a_conditional_flow_needs_labels_and_uses_them():
    torch.manual_seed(0)
    net = multiscale(context_size=3)
    flow = Flow(net, (1, 4, 4), prior=ClassGaussian((16,), classes=3), classes=3, conditional=True)
    perturb_parameters(flow, std=0.2, seed=2)
    flow.eval()
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(RevkitError, match="pass the labels"):
        flow.encode(x)
    z0, z1 = flow.encode(x, torch.tensor([0, 0])), flow.encode(x, torch.tensor([1, 1]))
    assert not torch.allclose(z0, z1)
    assert torch.allclose(flow.decode(z1, torch.tensor([1, 1])), x, atol=1e-5)
    assert flow.sample(4, y=torch.tensor(2)).shape == (4, 1, 4, 4)  # one label for all samples
    assert flow.sample(4).shape == (4, 1, 4, 4)  # labels drawn uniformly


def test_a_prior_of_the_wrong_shape_is_refused():
    with pytest.raises(RevkitError, match="latent has shape"):
        Flow(multiscale(), (1, 4, 4), prior=StandardNormal((15,)))


def test_log_prob_without_a_prior_says_so():
    flow = Flow(multiscale(), (1, 4, 4))
    with pytest.raises(RevkitError, match="no prior"):
        flow.log_prob(torch.rand(2, 1, 4, 4))

"""The i-ResNet block: spectral normalisation of the operator, the log-det estimators against the
exact log-det, and the fixed-point inverse's bookkeeping. (The conformance kit runs over the block in
tests/test_conformance.py.)"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import Tensor, nn

from revkit.blocks.iresnet import IResNet, InverseNotConverged
from revkit.blocks.logdet_estimators import exact_logdet, series_bias_bound
from revkit.blocks.spectral import SpectralNormalized, operator_norm
from revkit.flow import Flow
from revkit.priors import StandardNormal

SHAPES = [(2,), (1, 8, 8)]


def _block(shape: tuple[int, ...], boost: float = 1.0, **params: object) -> IResNet:
    """A float64 block in eval mode whose norm estimates have converged (training-mode passes);
    ``boost`` scales the raw weights first (large enough, every layer ends up at norm c)."""
    torch.manual_seed(0)
    block = IResNet(shape, hidden=8, **params).double()  # type: ignore[arg-type]
    with torch.no_grad():
        for layer in block.layers:
            layer.layer.weight.mul_(boost)
    block.train()
    with torch.no_grad():
        for _ in range(30):
            block.weights()
    return block.eval()


def _inputs(shape: tuple[int, ...], n: int = 3) -> Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _estimates(block: IResNet, x: Tensor, draws: int) -> Tensor:
    """``[draws, B]`` independent forward log-dets. A series draws its probes row by row, so the
    draws come from one pass over ``draws`` copies of the batch; the roulette draws one length per
    pass, so it needs a pass per draw (seeds 0 … draws−1)."""
    if block.logdet_kind == "series":
        torch.manual_seed(0)
        with torch.no_grad():
            return block(x.repeat(draws, *([1] * (x.dim() - 1))))[1].reshape(draws, x.shape[0])
    out = []
    with torch.no_grad():
        for seed in range(draws):
            torch.manual_seed(seed)
            out.append(block(x)[1])
    return torch.stack(out)


def _exact(block: IResNet, x: Tensor) -> Tensor:
    with torch.no_grad(), block.exact_logdet_mode():
        return block(x)[1]


def _series_matrices(block: IResNet, x: Tensor, terms: int) -> list[Tensor]:
    """Per sample the dense ``M = Σ_{k≤n} (−1)^{k+1} J_g^k / k``, whose trace the series estimates."""
    weights = [w.detach() for w in block.weights()]
    shape, out = x.shape[1:], []
    for xi in x:
        jac = torch.func.jacrev(lambda v: block.g(v.reshape(1, *shape), weights).reshape(-1))(xi.reshape(-1))
        power, total = torch.eye(jac.shape[0], dtype=x.dtype), torch.zeros_like(jac)
        for k in range(1, terms + 1):
            power = power @ jac
            total = total + (-1) ** (k + 1) * power / k
        out.append(total.detach())
    return out


def _truncated_series(block: IResNet, x: Tensor, terms: int) -> Tensor:
    """Σ_{k≤n} (−1)^{k+1} tr(J_g^k)/k: what the Hutchinson estimate of a truncated series averages to."""
    return torch.stack([torch.trace(m) for m in _series_matrices(block, x, terms)])


# -- spectral normalisation ----------------------------------------------------------------------
def _converged(layer: SpectralNormalized, passes: int = 100) -> Tensor:
    layer.train()
    with torch.no_grad():
        for _ in range(passes):
            weight = layer.weight()
    return weight


def test_a_convolution_is_normalised_by_its_operator_norm_to_at_most_c() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, padding=1).double()
    with torch.no_grad():
        conv.weight.mul_(5.0)  # far above c
    layer = SpectralNormalized(conv, (2, 8, 8), coeff=0.9, n_power_iterations=1).double()
    weight = _converged(layer)
    measured = operator_norm(layer, weight)
    assert measured <= 0.9 * (1 + 1e-3)
    assert measured >= 0.9 * (1 - 1e-3)  # scaled down to c, not further
    assert float(layer.sigma(store=False).detach()) == pytest.approx(operator_norm(layer), rel=1e-3)


def test_the_operator_norm_is_not_the_reshaped_kernel_norm() -> None:
    # an all-ones 3×3 kernel: the reshaped 1×9 matrix has norm 3, the convolution on 8×8 almost 9
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    layer = SpectralNormalized(conv, (1, 8, 8), coeff=0.9, n_power_iterations=1).double()
    kernel_norm = float(torch.linalg.matrix_norm(conv.weight.detach().reshape(1, -1), ord=2))
    assert kernel_norm == pytest.approx(3.0)
    assert operator_norm(layer) > 2.5 * kernel_norm
    # normalising by the kernel's norm would leave a map with norm far above 1; ours is ≤ c
    assert operator_norm(layer, conv.weight * 0.9 / kernel_norm) > 2.0
    assert operator_norm(layer, _converged(layer)) <= 0.9 * (1 + 1e-3)


def test_a_weight_already_below_c_is_left_alone() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(4, 4).double()
    with torch.no_grad():
        linear.weight.mul_(0.01)
    layer = SpectralNormalized(linear, (4,), coeff=0.9, n_power_iterations=1).double()
    assert torch.equal(_converged(layer), linear.weight)


def test_every_layer_of_a_trained_block_keeps_its_bound() -> None:
    block = _block((2, 4, 4), coeff=0.7)
    for layer in block.layers:
        assert operator_norm(layer, layer.weight()) <= 0.7 * (1 + 1e-2)
    assert block.lipschitz_bound() <= 0.7**3 * (1 + 1e-2)


# -- the log-det -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_power_series_mean_is_the_truncated_series_and_its_bias_is_within_the_bound(shape: tuple[int, ...]) -> None:
    x = _inputs(shape)
    exact, previous_bias = None, math.inf
    for terms in (1, 2, 4, 8):
        block = _block(shape, logdet="series", series_terms=terms, n_probes=1)
        exact = _exact(block, x) if exact is None else exact
        estimates = _estimates(block, x, draws=500)
        mean, stderr = estimates.mean(0), estimates.std(0) / math.sqrt(500)
        truncated = _truncated_series(block, x, terms)
        assert torch.all((mean - truncated).abs() <= 4 * stderr + 1e-9), (terms, mean, truncated, stderr)
        bias = (truncated - exact).abs()
        bound = series_bias_bound(math.prod(shape), block.lipschitz_bound(), terms)
        assert torch.all(bias <= bound), (terms, bias, bound)
        assert torch.all(block.logdet_bias_bound(x) == bound)
        assert float(bias.max()) <= previous_bias + 1e-12  # more terms, less bias
        previous_bias = float(bias.max())
    assert previous_bias < 1e-3  # eight terms: well converged for these blocks


@pytest.mark.parametrize("shape", SHAPES)
def test_power_series_variance_is_hutchinsons_and_falls_with_probes(shape: tuple[int, ...]) -> None:
    # the estimate is vᵀMv with M = Σ_k (−1)^{k+1} J^k / k; for S = (M + Mᵀ)/2 Hutchinson's variance
    # is 2‖S‖²_F for Gaussian probes and 2(‖S‖²_F − Σ S_ii²) for Rademacher probes, over n_probes
    x = _inputs(shape)
    draws = 600
    for probe in ("gaussian", "rademacher"):
        for n_probes in (1, 3):
            block = _block(shape, logdet="series", series_terms=3, probe=probe, n_probes=n_probes)
            sym = [(m + m.T) / 2 for m in _series_matrices(block, x, 3)]
            frob = torch.stack([(m**2).sum() for m in sym])
            diag = torch.stack([(torch.diagonal(m) ** 2).sum() for m in sym])
            theory = 2 * (frob if probe == "gaussian" else frob - diag) / n_probes
            ratio = _estimates(block, x, draws).var(0) / theory
            assert torch.all((ratio > 0.75) & (ratio < 1.33)), (probe, n_probes, ratio)


@pytest.mark.parametrize("shape", SHAPES)
def test_russian_roulette_is_unbiased_within_three_standard_errors(shape: tuple[int, ...]) -> None:
    x = _inputs(shape)
    block = _block(shape, boost=5.0, coeff=0.95, logdet="roulette", series_terms=1, roulette_p=0.5)
    exact = _exact(block, x)
    estimates = _estimates(block, x, draws=400)
    mean, stderr = estimates.mean(0), estimates.std(0) / math.sqrt(400)
    assert torch.all((mean - exact).abs() <= 3 * stderr), (mean, exact, stderr)
    # the block is far from the identity: the first term alone misses the exact value
    assert float((_truncated_series(block, x, 1) - exact).abs().max()) > 0.01


def test_the_neumann_gradient_averages_to_the_exact_log_det_gradient() -> None:
    shape = (2,)
    x = _inputs(shape, n=2)
    block = _block(shape, logdet="roulette", series_terms=2, neumann_gradient=True)
    params = [p for p in block.parameters()]

    def gradient(exact: bool, seed: int = 0) -> Tensor:
        torch.manual_seed(seed)
        if exact:
            with block.exact_logdet_mode():
                logdet = block(x)[1]
        else:
            logdet = block(x)[1]
        grads = torch.autograd.grad(logdet.sum(), params, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)])

    truth = gradient(exact=True)
    draws = torch.stack([gradient(exact=False, seed=s) for s in range(300)])
    mean, stderr = draws.mean(0), draws.std(0) / math.sqrt(300)
    assert torch.all((mean - truth).abs() <= 4 * stderr + 1e-8)
    assert float((mean - truth).norm() / truth.norm()) < 0.1


def test_the_exact_mode_matches_a_dense_jacobian_and_is_differentiable() -> None:
    block = _block((1, 2, 2), logdet="series")
    x = _inputs((1, 2, 2))
    weights = block.weights()
    dense = torch.stack([
        torch.linalg.slogdet(torch.eye(4, dtype=x.dtype) + torch.func.jacrev(
            lambda v: block.g(v.reshape(1, 1, 2, 2), weights).reshape(-1))(xi.reshape(-1)))[1]
        for xi in x])
    assert torch.allclose(exact_logdet(lambda v: block.g(v, weights), x), dense, atol=1e-12)
    assert torch.allclose(_exact(block, x), dense, atol=1e-12)
    block.train()
    with block.exact_logdet_mode():
        block(x)[1].sum().backward()
    # every weight shapes J_g (the last bias does not: it only shifts g)
    weights = [p for name, p in block.layers.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in weights)


def test_evaluation_mode_uses_eval_series_terms() -> None:
    block = IResNet((2,), series_terms=2, eval_series_terms=9)
    assert block.train().terms == 2
    assert block.eval().terms == 9
    assert IResNet((2,), series_terms=3).eval().terms == 3


# -- the fixed-point inverse ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["anderson", "plain"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_inverse_reports_iterations_and_convergence(shape: tuple[int, ...], method: str) -> None:
    block = _block(shape, inverse_tol=1e-10, inverse_max_iter=200, inverse_method=method)
    x = _inputs(shape, n=5)
    with torch.no_grad():
        y = block(x)[0]
        x_back = block.inverse(y)[0]
    stats = block.last_inverse
    assert stats is not None and stats.all_converged
    assert stats.iterations.shape == (5,) and bool((stats.iterations >= 1).all())
    assert int(stats.iterations.max()) < 200 and stats.max_change <= 1e-10
    assert float((x_back - x).abs().max()) < 1e-9
    # a looser tolerance stops earlier
    loose = _block(shape, inverse_tol=1e-3, inverse_max_iter=200, inverse_method=method)
    with torch.no_grad():
        loose.inverse(y)
    assert loose.last_inverse is not None
    assert bool((loose.last_inverse.iterations < stats.iterations).all())


def test_an_unconverged_inverse_warns_in_evaluation_naming_the_layer() -> None:
    block = _block((4,), inverse_max_iter=1, inverse_tol=1e-12)
    flow = Flow([block], (4,), prior=StandardNormal((4,)))
    y = _inputs((4,))
    flow.eval()
    with pytest.warns(InverseNotConverged, match=r"flow\.net\.layers\.0 \(IResNet\(8\)\).*did not converge for 3 of 3"):
        flow.decode(y)
    assert block.last_inverse is not None and not bool(block.last_inverse.converged.any())
    assert block.last_inverse.iterations.tolist() == [1, 1, 1]
    flow.train()  # training mode records it without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flow.decode(y)
    assert not block.last_inverse.all_converged


def test_inverse_samples_converge_independently_of_the_rest_of_the_batch() -> None:
    block = _block((1, 4, 4), inverse_tol=1e-8)
    y = _inputs((1, 4, 4), n=4)
    with torch.no_grad():
        alone = block.inverse(y[:1])[0]
        scaled = y.clone()
        scaled[1:] *= 10  # others need more iterations
        together = block.inverse(scaled)[0]
    assert torch.equal(alone[0], together[0])


def test_gradients_flow_through_the_last_step_of_the_inverse() -> None:
    block = _block((2,))
    y = _inputs((2,)).requires_grad_(True)
    x, logdet = block.inverse(y)
    (x.sum() + logdet.sum()).backward()
    assert y.grad is not None and bool(torch.isfinite(y.grad).all())
    assert all(p.grad is not None for p in block.layers.parameters())


@pytest.mark.parametrize("shape", SHAPES)
def test_russian_roulette_is_unbiased_where_the_higher_terms_matter(shape: tuple[int, ...]) -> None:
    # a linear g(x) = A x with symmetric A of eigenvalues up to 0.6: the traces of A^k are large, so two
    # terms are far off and only correct reweighting of the random tail is unbiased (eigenvalues ≤ 0.6 and
    # p = 0.5 keep the roulette's variance finite: λ²/(1 − p) < 1)
    from revkit.blocks.logdet_estimators import draw_probe, power_series_logdet, roulette_weights

    d = math.prod(shape)
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    eigenvalues = torch.linspace(-0.6, 0.6, d, dtype=torch.float64) if d > 2 else torch.tensor([0.6, 0.55]).double()
    a = q @ torch.diag(eigenvalues) @ q.T
    exact = float(torch.log1p(eigenvalues).sum())
    x = torch.randn(1, *shape, generator=gen, dtype=torch.float64).requires_grad_(True)
    gx = (x.reshape(1, d) @ a.T).reshape(1, *shape)
    draws = 1500
    estimates = []
    for seed in range(draws):
        torch.manual_seed(seed)
        weights = roulette_weights(2, 0.5)
        probes = [draw_probe(x, "rademacher") for _ in range(4)]
        estimates.append(float(power_series_logdet(gx, x, weights, probes, create_graph=False)))
    values = torch.tensor(estimates)
    mean, stderr = float(values.mean()), float(values.std() / math.sqrt(draws))
    assert abs(mean - exact) <= 3 * stderr, (mean, exact, stderr)
    two_terms = float(torch.trace(a) - torch.trace(a @ a) / 2)
    assert abs(two_terms - exact) > 6 * stderr  # the check has the power to see a missing tail

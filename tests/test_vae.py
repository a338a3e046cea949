"""VAE specs ([model] kind = "vae"), the built model, and the elbo objective with KL warm-up."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from revkit.blocks.coupling import AffineCoupling
from revkit.blocks.planar import Planar
from revkit.build import build
from revkit.data.base import DataInfo
from revkit.errors import RevkitError, SpecError
from revkit.vae.objective import Elbo
from revkit.spec import load_spec, load_spec_dict, spec_json_schema
from revkit.train.trainer import Trainer
from revkit.runs.folder import RunFolder
from revkit.vae import VAE

SPECS = Path(__file__).resolve().parents[1] / "revkit" / "specs"
VAE_SPECS = ["vae_plain", "vae_planar_k4", "vae_planar_k10", "vae_realnvp_k2", "vae_realnvp_k5"]


def vae_doc(**vae: object) -> dict:
    return {"model": {"kind": "vae", "vae": {"latent": 4, "channels": 2, "hidden": 8, **vae}},
            "objective": {"kind": "elbo", "iwae_samples": 3},
            "data": {"kind": "binarized_mnist", "root": "nowhere"}}


# -- the spec --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VAE_SPECS)
def test_bundled_vae_specs_build_with_the_flow_they_name_and_an_equal_budget(name):
    spec = load_spec(SPECS / f"{name}.toml")
    model = build(spec).model
    assert isinstance(model, VAE) and model.latent_shape == (32,)
    kind, k = ("plain", 0) if name == "vae_plain" else (name.split("_")[1], int(name.split("_k")[1]))
    assert model.flow_steps == k
    expected = {"plain": None, "planar": Planar, "realnvp": AffineCoupling}[kind]
    assert all(isinstance(b, expected) for b in model.posterior_flow)
    budget = tomllib.loads((SPECS / f"{name}.toml").read_text())["train"]
    reference = tomllib.loads((SPECS / "vae_plain.toml").read_text())["train"]
    assert budget == reference and budget["time_limit_minutes"] > 0


def test_posterior_flow_layers_are_validated_by_the_block_registry_at_their_path():
    doc = vae_doc(posterior_flow=[{"block": "planar"}, {"block": "planar", "hiden": 3}])
    with pytest.raises(SpecError) as err:
        load_spec_dict(doc)
    assert err.value.path.startswith("model.vae.posterior_flow[1]")
    doc = vae_doc(posterior_flow=[{"block": "squeeze"}])  # an image block on the latent vector
    with pytest.raises(SpecError) as err:
        build(load_spec_dict(doc))
    assert err.value.path == "model.vae.posterior_flow[0]"


@pytest.mark.parametrize(
    "model, path",
    [
        ({"kind": "vae"}, "model.vae"),
        ({"kind": "vae", "vae": {}, "layers": [{"block": "permute"}]}, "model.layers"),
        ({"vae": {}, "layers": [{"block": "permute"}]}, "model.vae"),
        ({}, "model.layers"),
    ],
)
def test_kind_and_tables_must_agree(model, path):
    doc = vae_doc()
    doc["model"] = model
    with pytest.raises(SpecError) as err:
        load_spec_dict(doc)
    assert err.value.path == path


def test_a_vae_spec_round_trips_through_toml_and_a_flow_spec_keeps_no_kind():
    spec = load_spec_dict(vae_doc(context=3, posterior_flow=[{"block": "planar", "repeat": 2}]))
    text = spec.to_toml()
    assert load_spec_dict(tomllib.loads(text)) == spec
    assert 'kind = "vae"' in text and "[[model.vae.posterior_flow]]" in text
    flow = load_spec_dict({"model": {"layers": [{"block": "permute"}]}, "data": {"kind": "toy2d"}})
    assert "kind" not in flow.to_dict()["model"]


def test_the_schema_lists_blocks_for_the_posterior_flow():
    vae = spec_json_schema()["properties"]["model"]["properties"]["vae"]
    names = {v["properties"]["block"]["const"] for v in vae["properties"]["posterior_flow"]["items"]["oneOf"]}
    assert {"planar", "affine_coupling", "permute"} <= names


# -- the model -------------------------------------------------------------------------------------
def tiny_vae(flow: list[dict], context: int = 3, decoder: str = "mlp") -> VAE:
    torch.manual_seed(0)
    return build(load_spec_dict(vae_doc(context=context, decoder=decoder, posterior_flow=flow))).model


@pytest.mark.parametrize("decoder", ["mlp", "conv"])
def test_the_posterior_flow_sees_the_encoders_context_and_changes_log_q(decoder):
    model = tiny_vae([{"block": "planar", "repeat": 2}, {"block": "permute", "mode": "random"},
                      {"block": "affine_coupling", "hidden": 8}], decoder=decoder)
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3))
    post = model.posterior(x)
    assert post.context is not None and post.context.shape == (5, 3)
    for block in model.posterior_flow:  # leave the identity start, so the flow does something
        if isinstance(block, Planar):
            torch.nn.init.normal_(block.amortize.weight)
        elif isinstance(block, AffineCoupling):
            torch.nn.init.normal_(block.subnet.net[-1].weight)
    torch.manual_seed(1)
    z, log_q = model.draw(post, 7)
    assert z.shape == (7, 5, 4) and log_q.shape == (7, 5)
    torch.manual_seed(1)
    z0 = post.mean + post.log_std.exp() * torch.randn(7, 5, 4)
    base = torch.distributions.Normal(post.mean, post.log_std.exp()).log_prob(z0).sum(-1)
    zk, logdet = model.posterior_flow(z0.reshape(35, 4), post.context.repeat(7, 1))
    assert torch.allclose(z, zk.reshape(7, 5, 4), atol=1e-5)
    assert torch.allclose(log_q, base - logdet.reshape(7, 5), atol=1e-4)
    other, _ = model.posterior_flow(z0.reshape(35, 4), torch.zeros(35, 3))
    assert not torch.allclose(other, zk, atol=1e-3)  # the context steers the flow
    assert model.log_likelihood(x, z).shape == (7, 5)
    assert model.sample(3).shape == (3, 1, 28, 28)


# -- the objective ---------------------------------------------------------------------------------
def test_kl_warm_up_rises_linearly_to_one_with_the_step():
    objective = Elbo(kl_warmup_steps=100)
    betas = []
    for step in (0, 25, 100, 400):
        objective.updates_at(step)
        betas.append(objective.beta)
    assert betas == [0.0, 0.25, 1.0, 1.0]
    assert Elbo().beta == 1.0


def test_the_warm_up_weight_multiplies_the_kl_term_of_the_loss():
    model = tiny_vae([{"block": "planar"}])
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3))
    objective = Elbo(kl_warmup_steps=10)
    losses = {}
    for step in (0, 5, 10):
        objective.updates_at(step)
        torch.manual_seed(3)
        out = objective.losses(model, (x, torch.zeros(4)))
        losses[step] = (float(out.loss.detach()), out.metrics)
    recon, kl = losses[0][1]["recon_nll"], losses[0][1]["kl"]
    assert losses[0][0] == pytest.approx(recon, rel=1e-5)
    assert losses[5][0] == pytest.approx(recon + 0.5 * kl, rel=1e-5)
    assert losses[10][0] == pytest.approx(-losses[10][1]["elbo"], rel=1e-5)


def test_elbo_refuses_a_flow_and_grey_data():
    with pytest.raises(RevkitError, match="VAE"):
        Elbo().setup(torch.nn.Identity(), DataInfo((1, 28, 28), 10, 2, "binarized_mnist"))  # type: ignore[arg-type]
    with pytest.raises(RevkitError, match="binarized_mnist"):
        Elbo().setup(tiny_vae([]), DataInfo((1, 28, 28), 10, 256, "mnist"))


def test_the_trainer_fits_a_vae_and_evaluation_reports_the_bounds(tmp_path):
    model = tiny_vae([{"block": "planar", "repeat": 2}])
    objective = Elbo(kl_warmup_steps=5, iwae_samples=50, iwae_chunk=64)
    gen = torch.Generator().manual_seed(0)
    prototypes = torch.bernoulli(torch.full((2, 1, 28, 28), 0.5), generator=gen)
    data = prototypes.repeat(32, 1, 1, 1)
    batches = [(data[i : i + 16], torch.zeros(16, dtype=torch.long)) for i in range(0, 64, 16)]
    settings = load_spec_dict(vae_doc()).train.model_copy(update={"steps": 60, "lr": 1e-2, "log_every": 10,
                                                                    "checkpoint_every": 0, "device": "cpu"})
    trainer = Trainer(model, objective, batches, settings, files=RunFolder(tmp_path))
    before = objective.evaluate(model, batches[0])
    trainer.fit()
    after = objective.evaluate(model, batches[0])
    assert set(after) == {"nll_iwae", "elbo", "recon_nll", "kl"}
    assert after["nll_iwae"].mean() < before["nll_iwae"].mean() - 50
    assert (after["nll_iwae"] <= -after["elbo"] + 1e-4).all()  # −IWAE ≤ −ELBO from the same draws
    assert objective.beta == 1.0


def test_inspect_prints_the_posterior_flow_and_parameter_counts(capsys):
    from revkit.cli import main

    assert main(["inspect", str(SPECS / "vae_planar_k4.toml")]) == 0
    out = capsys.readouterr().out
    assert "posterior flow: 4×Planar(amortised)" in out and "(K = 4)" in out
    assert "encoder" in out and "decoder" in out

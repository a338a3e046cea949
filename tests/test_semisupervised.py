"""Semi-supervised training: the labels kept per class (seeded, balanced), the views of the training split
(unlabelled marked −1, labelled only, labelled repeated), the spec keys and the parts of a spec that would read a
withheld label, and the hybrid classifier on batches that mix labelled and unlabelled images."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mnist_paths import DATA_ROOT, needs_mnist
from torch import Tensor
from torch.utils.data import Dataset

from revkit.blocks.permute import Permute
from revkit.build import build, check_unlabelled
from revkit.data import InMemoryDataset, Mnist, make_loaders
from revkit.data.base import UNLABELLED, DataInfo, DataSource, Split
from revkit.data.binarized_mnist import DynamicBinarized
from revkit.data.semisupervised import SemiSupervised, labelled_indices, semi_supervised, split_labels
from revkit.errors import DataError, RevkitError, SpecError
from revkit.flow import Flow
from revkit.objectives.adversarial import Adversarial
from revkit.objectives.base import Losses, Objective
from revkit.objectives.classifier import Classifier
from revkit.plugins import get_registries
from revkit.priors import StandardNormal
from revkit.spec import load_spec
from revkit.train.metrics import WindowMeans

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"


def _labels(counts: list[int], seed: int = 0) -> Tensor:
    """Labels with ``counts[k]`` images of class ``k``, in a shuffled order."""
    y = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


def _split(counts: list[int]) -> InMemoryDataset:
    """A labelled split of 1-D 'images' whose value is their index (so an item says where it came from)."""
    y = _labels(counts)
    return InMemoryDataset(torch.arange(len(y), dtype=torch.float32).reshape(-1, 1), y)


# -- the choice of labelled images -----------------------------------------------------------------
def test_the_kept_labels_are_balanced_per_class_and_sorted() -> None:
    y = _labels([30, 50, 20])
    kept = labelled_indices(y, 7, classes=3, seed=0)
    assert kept.shape == (21,) and torch.equal(kept, torch.sort(kept).values)
    assert len(set(kept.tolist())) == 21
    assert torch.bincount(y[kept], minlength=3).tolist() == [7, 7, 7]


def test_the_choice_is_reproducible_seeded_and_nested_in_n() -> None:
    y = _labels([40, 40, 40])
    a, b = labelled_indices(y, 5, 3, seed=3), labelled_indices(y, 5, 3, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, labelled_indices(y, 5, 3, seed=4))
    assert set(a.tolist()) <= set(labelled_indices(y, 9, 3, seed=3).tolist())  # growing n keeps the chosen


def test_a_class_with_too_few_images_is_an_error_naming_the_key() -> None:
    with pytest.raises(DataError, match=r"labels_per_class = 6, but class 2 has only 5 .*allowed: 1 … 5"):
        labelled_indices(_labels([10, 10, 5]), 6, classes=3)
    with pytest.raises(DataError, match="no classes"):
        labelled_indices(_labels([10]), 1, classes=0)
    with pytest.raises(DataError, match="must be ≥ 1"):
        labelled_indices(_labels([10]), 0, classes=1)


# -- the views of the training split ------------------------------------------------------------------
def test_unlabelled_images_are_marked_minus_one_and_keep_their_images() -> None:
    split = _split([20, 20, 20])
    semi = semi_supervised(split, classes=3, per_class=4, seed=1)
    kept = labelled_indices(split.labels, 4, 3, seed=1)
    assert len(semi) == 60 and UNLABELLED == -1
    assert (semi.labels != UNLABELLED).sum() == 12
    for i in range(60):
        x, y = semi[i]
        assert int(x) == i  # the same image
        assert y == (int(split.labels[i]) if i in set(kept.tolist()) else -1)
    assert semi.__getitems__([3, 0, 59]) == [semi[3], semi[0], semi[59]]


def test_labelled_only_keeps_exactly_the_labelled_images() -> None:
    split = _split([20, 30, 25])
    only = semi_supervised(split, classes=3, per_class=5, seed=0, labelled_only=True)
    kept = labelled_indices(split.labels, 5, 3, seed=0)
    assert len(only) == 15
    assert sorted(int(only[i][0]) for i in range(15)) == kept.tolist()
    assert all(only[i][1] == int(split.labels[int(only[i][0])]) for i in range(15))
    assert torch.bincount(only.labels, minlength=3).tolist() == [5, 5, 5]


def test_labelled_repeat_lists_each_labelled_image_r_times() -> None:
    split = _split([20, 20])
    rep = semi_supervised(split, classes=2, per_class=3, repeat=4)
    assert len(rep) == 40 + 3 * 6
    sources = [int(rep[i][0]) for i in range(len(rep))]
    kept = set(labelled_indices(split.labels, 3, 2).tolist())
    assert all(sources.count(i) == (4 if i in kept else 1) for i in range(40))
    assert int((rep.labels != UNLABELLED).sum()) == 4 * 6
    with pytest.raises(DataError, match="labelled_only"):
        SemiSupervised(split, torch.tensor([0, 1]), labelled_only=True, repeat=2)


class _TwoDomains(Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> tuple[Tensor, int, Tensor, int]:
        return torch.zeros(1), 0, torch.zeros(1), 1


def test_only_sources_of_x_y_pairs_can_withhold_labels() -> None:
    with pytest.raises(DataError, match=r"\(x, y\) items; this one yields 4 entries"):
        split_labels(_TwoDomains())


def test_reading_the_labels_of_dynamically_binarized_data_draws_nothing() -> None:
    grey = InMemoryDataset(torch.randint(0, 256, (10, 1, 2, 2), dtype=torch.uint8), _labels([5, 5]))
    state = torch.random.get_rng_state()
    assert torch.equal(split_labels(DynamicBinarized(grey)), grey.labels)
    assert torch.equal(torch.random.get_rng_state(), state)


class _Blobs(DataSource):
    needs_root = False

    def __init__(self) -> None:
        self.info = DataInfo(shape=(1,), classes=3, levels=None, name="blobs")
        self.splits = {"train": _split([40, 40, 40]), "test": _split([10, 10, 10])}

    def dataset(self, split: Split) -> InMemoryDataset:
        return self.splits[split]


def _data(**fields: object) -> SimpleNamespace:
    base = {"batch_size": 8, "test_batch_size": 30, "num_workers": 0, "pad": 0}
    return SimpleNamespace(**{**base, **fields})


def test_the_loaders_withhold_training_labels_only() -> None:
    source = _Blobs()
    train, test, _ = make_loaders(_data(labels_per_class=2, labels_seed=5), source, seed=0)
    assert bool((source.dataset("train").labels >= 0).all())  # the source itself (classifier scores) keeps them
    ys = torch.cat([y for _, y in train])
    assert int((ys != UNLABELLED).sum()) <= 6 and int((ys == UNLABELLED).sum()) >= 120 - 6 - 8
    assert bool((next(iter(test))[1] >= 0).all())  # the test split keeps every label
    only, _, _ = make_loaders(_data(labels_per_class=2, labelled_only=True, batch_size=6), _Blobs(), seed=0)
    assert torch.bincount(torch.cat([y for _, y in only]), minlength=3).tolist() == [2, 2, 2]
    with pytest.raises(DataError, match=r"larger than the 6 labelled \(data.labelled_only\) training samples"):
        make_loaders(_data(labels_per_class=2, labelled_only=True, batch_size=7), _Blobs())
    with pytest.raises(DataError, match="set labels_per_class"):
        make_loaders(_data(labelled_only=True), _Blobs())


@needs_mnist
def test_mnist_keeps_100_labels_per_class_reproducibly() -> None:
    mnist = Mnist(root=DATA_ROOT, download=False)
    train = mnist.dataset("train")
    a = semi_supervised(train, 10, 100, seed=0)
    b = semi_supervised(train, 10, 100, seed=0)
    assert torch.equal(a.labels, b.labels) and len(a) == 60_000
    kept = a.labels[a.labels != UNLABELLED]
    assert torch.bincount(kept, minlength=10).tolist() == [100] * 10
    assert torch.equal(kept, train.labels[a.labels != UNLABELLED])


# -- the spec --------------------------------------------------------------------------------------
def _spec(name: str, *overrides: str):
    return load_spec(SPECS / f"{name}.toml", overrides)


@pytest.mark.parametrize(("overrides", "path", "message"), [
    (["data.labelled_only=true"], "data.labelled_only", "set labels_per_class"),
    (["data.labelled_repeat=5"], "data.labelled_repeat", "set labels_per_class"),
    (["data.labels_seed=2"], "data.labels_seed", "seeds the choice"),
    (["data.labels_per_class=0"], "data.labels_per_class", "≥ 1"),
    (["data.labels_per_class=1.5"], "data.labels_per_class", "integer"),
    (["data.labels_per_class=10", "data.labelled_only=true", "data.labelled_repeat=2"], "data.labelled_repeat",
     "labelled_only = true keeps no unlabelled image"),
])
def test_bad_semi_supervised_keys_are_spec_errors(overrides: list[str], path: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        _spec("mnist_iresnet_classifier", *overrides)
    assert caught.value.path == path


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("mnist_iresnet_hybrid", ["model.conditional=true"], "model.conditional = true passes every image's label"),
    ("mnist_iresnet_hybrid", ['prior.kind="class_gaussian"'], "prior 'class_gaussian' has a component per class"),
    ("mnist_ot", [], "prior 'class_gaussian'"),
    ("toy2d_realnvp", [], "'toy2d' has no labels"),
])
def test_parts_that_read_every_label_refuse_semi_supervised_data(name: str, overrides: list[str],
                                                                  message: str) -> None:
    spec = _spec(name, "data.labels_per_class=5", *overrides)
    with pytest.raises(SpecError, match=message) as caught:
        build(spec)
    assert caught.value.path == "data.labels_per_class"
    assert "data.labelled_only = true" in str(caught.value) or "no labels" in str(caught.value)
    if name != "toy2d_realnvp":  # with every image labelled, nothing reads a −1
        build(_spec(name, "data.labels_per_class=5", "data.labelled_only=true", *overrides))


class _EveryLabel(Objective):
    """An objective that reads every label (declares nothing)."""

    def losses(self, model: Flow, batch: tuple[Tensor, Tensor], update: str = "model") -> Losses:
        return Losses(batch[1].float().sum())


def test_an_objective_must_declare_that_it_takes_unlabelled_images() -> None:
    spec = _spec("mnist_iresnet_hybrid", "data.labels_per_class=5")
    built = build(spec)
    assert built.objective.accepts_unlabelled and not Objective.accepts_unlabelled
    with pytest.raises(SpecError, match=r"objective 'classifier' reads every image's label.*'classifier'.*"
                                        r"'max_likelihood'") as caught:
        check_unlabelled(spec, built.model, _EveryLabel(), built.info)
    assert "'optimal_transport'" not in str(caught.value)
    assert Adversarial().accepts_unlabelled and not Adversarial(conditional=True).accepts_unlabelled
    registered = get_registries().objectives
    assert {n for n in registered.names() if getattr(registered.get(n), "accepts_unlabelled", False)} >= {
        "classifier", "max_likelihood", "latent_adversary", "adversarial", "flow_gan"}


# -- the shipped specs -------------------------------------------------------------------------------
def test_the_semi_supervised_specs_compare_one_network_at_one_budget() -> None:
    hybrid = _spec("mnist_iresnet_hybrid")
    semi = _spec("mnist_iresnet_semisupervised")
    supervised = _spec("mnist_iresnet_supervised100")
    assert hybrid.model == semi.model == supervised.model
    assert hybrid.train == semi.train == supervised.train
    assert semi.data.batch_size == supervised.data.batch_size
    assert hybrid.objective.kwargs()["nll_weight"] > 0 and hybrid.data.labels_per_class is None
    assert semi.objective.kwargs()["nll_weight"] > 0 and supervised.objective.kwargs()["nll_weight"] == 0
    assert semi.data.labels_per_class == supervised.data.labels_per_class == 100
    assert semi.data.labels_seed == supervised.data.labels_seed
    assert not semi.data.labelled_only and supervised.data.labelled_only
    for name in ("mnist_iresnet_hybrid", "mnist_iresnet_semisupervised", "mnist_iresnet_supervised100"):
        text = (SPECS / f"{name}.toml").read_text()
        assert "NOT YET MEASURED" not in text and "Measured (docs/iresnet_classifier.md" in text


# -- the hybrid classifier on mixed batches ----------------------------------------------------------
INFO = DataInfo(shape=(4,), classes=3, levels=None, name="blobs")
LOG_2PI = math.log(2 * math.pi)


def _reversing_flow() -> Flow:
    """z = x reversed, log|det| = 0, a standard normal prior: every term can be written by hand."""
    return Flow([Permute((4,))], (4,), prior=StandardNormal((4,)))


def _classifier(nll_weight: float) -> tuple[Flow, Classifier]:
    flow, objective = _reversing_flow(), Classifier(nll_weight=nll_weight)
    objective.setup(flow, INFO)
    head = objective.head
    assert isinstance(head, torch.nn.Linear)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, -1.0]]))
        head.bias.copy_(torch.tensor([0.0, 0.5, -0.5]))
    return flow, objective


X = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [-2.0, 0.0, 0.5, 1.5], [0.0, 3.0, -1.0, 0.5]])


def _by_hand(x: Tensor, y: list[int], weight: float) -> tuple[float, float, float, float]:
    """(loss, cross-entropy and accuracy over the labelled, nats/dim over all) with plain arithmetic."""
    ces, nlls, correct = [], [], []
    for row, label in zip(x.tolist(), y):
        z = row[::-1]
        logits = [z[0], z[1] + 0.5, z[2] - z[3] - 0.5]
        nlls.append(sum(0.5 * v * v + 0.5 * LOG_2PI for v in z) / 4)  # nats per dimension, continuous data
        if label >= 0:
            ces.append(math.log(sum(math.exp(v) for v in logits)) - logits[label])
            correct.append(max(range(3), key=lambda k: logits[k]) == label)
    ce = sum(ces) / len(ces) if ces else 0.0
    nll = sum(nlls) / len(nlls)
    return ce + weight * nll, ce, sum(correct) / max(len(correct), 1), nll


def test_the_hybrid_loss_on_a_mixed_batch_is_the_hand_computed_one() -> None:
    y = [2, -1, 0, -1]
    flow, objective = _classifier(0.5)
    out = objective.losses(flow.train(), (X, torch.tensor(y)))
    loss, ce, accuracy, nll = _by_hand(X, y, 0.5)
    assert float(out.loss.detach()) == pytest.approx(loss, rel=1e-6)
    assert out.metrics["cross_entropy"] == pytest.approx(ce, rel=1e-6)
    assert out.metrics["bits_per_dim"] == pytest.approx(nll, rel=1e-6)  # nats/dim for continuous data
    # the labelled rows' logits: row 0 [0, 2.5, -2] (label 2: wrong), row 2 [1.5, 1, 1.5] (label 0: right, a tie
    # goes to the first class)
    assert out.metrics["accuracy"] == accuracy == 0.5


def test_unlabelled_images_send_no_cross_entropy_gradient_into_the_head() -> None:
    y = torch.tensor([2, -1, 0, -1])

    def head_grads(x: Tensor, labels: Tensor, weight: float) -> list[Tensor]:
        flow, objective = _classifier(weight)
        objective.losses(flow.train(), (x, labels)).loss.backward()
        return [p.grad.clone() for p in objective.head.parameters()]  # type: ignore[union-attr]

    mixed = head_grads(X, y, 0.5)
    moved = X.clone()
    moved[[1, 3]] = torch.tensor([[9.0, -7.0, 4.0, 2.0], [-3.0, 8.0, 0.0, -6.0]])  # other unlabelled images
    assert all(torch.equal(a, b) for a, b in zip(mixed, head_grads(moved, y, 0.5)))
    labelled_only = head_grads(X[[0, 2]], y[[0, 2]], 0.0)  # the cross-entropy of the labelled pair alone
    assert all(torch.allclose(a, b) for a, b in zip(mixed, labelled_only))


def test_without_likelihood_unlabelled_images_send_no_gradient_at_all() -> None:
    torch.manual_seed(0)
    from revkit.blocks.iresnet import IResNet

    def grads(x: Tensor, labels: Tensor) -> list[Tensor]:
        torch.manual_seed(1)
        flow = Flow([IResNet((4,), hidden=8)], (4,), prior=StandardNormal((4,)))
        objective = Classifier()
        objective.setup(flow, INFO)
        objective.losses(flow.train(), (x, labels)).loss.backward()
        return [p.grad.clone() for p in objective.parameter_groups(flow)["model"] if p.grad is not None]

    mixed = grads(X, torch.tensor([2, -1, 0, -1]))
    alone = grads(X[[0, 2]], torch.tensor([2, 0]))
    assert len(mixed) == len(alone) > 2
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mixed, alone))


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_a_batch_without_labelled_images_gives_a_finite_loss(weight: float) -> None:
    flow, objective = _classifier(weight)
    out = objective.losses(flow.train(), (X, torch.full((4,), UNLABELLED)))
    assert math.isfinite(float(out.loss.detach()))
    assert float(out.loss.detach()) == pytest.approx(_by_hand(X, [-1] * 4, weight)[0], rel=1e-6, abs=1e-12)
    assert math.isnan(out.metrics["cross_entropy"]) and math.isnan(out.metrics["accuracy"])
    out.loss.backward()
    head = list(objective.head.parameters())  # type: ignore[union-attr]
    assert all(p.grad is not None and not bool(p.grad.any()) for p in head)


def test_a_fully_labelled_batch_gives_the_plain_mean_cross_entropy() -> None:
    y = [2, 1, 0, 1]
    flow, objective = _classifier(0.0)
    out = objective.losses(flow.train(), (X, torch.tensor(y)))
    assert float(out.loss.detach()) == pytest.approx(_by_hand(X, y, 0.0)[0], rel=1e-6)
    metrics = objective.evaluate(flow.eval(), (X, torch.tensor(y)))
    assert set(metrics) == {"cross_entropy", "accuracy", "error_rate"}
    assert float(metrics["cross_entropy"].mean()) == pytest.approx(_by_hand(X, y, 0.0)[1], rel=1e-6)


def test_evaluation_needs_every_label() -> None:
    flow, objective = _classifier(0.5)
    with pytest.raises(RevkitError, match=r"2 of 4 evaluated images have no label"):
        objective.evaluate(flow.eval(), (X, torch.tensor([2, -1, 0, -1])))


def test_the_logged_means_leave_out_steps_where_a_metric_is_undefined() -> None:
    window = WindowMeans()
    window.add({"loss": 1.0, "accuracy": 0.5})
    window.add({"loss": 3.0, "accuracy": math.nan})
    window.add({"loss": 2.0, "accuracy": 1.0})
    assert window.pop() == {"loss": 2.0, "accuracy": 0.75}
    window.add({"loss": 1.0, "accuracy": math.nan})
    out = window.pop()
    assert out["loss"] == 1.0 and math.isnan(out["accuracy"])

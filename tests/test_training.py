"""Batched training: independence of batch-mates, regularizers, stopping and flags."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from circuit_census.errors import InputError
from circuit_census.network import Network
from circuit_census.tasks.boolean import make_task, train_validation
from circuit_census.training.loop import (
    TrainConfig,
    accuracy,
    parse_hidden,
    parse_seeds,
    train_models,
)
from circuit_census.training.models import (
    BatchedMLP,
    init_params,
    network_to_sequential,
    orthogonality_penalty,
    sequential_mlp,
)

XOR = make_task("xor")


def fixed_epochs(epochs: int, **kw) -> TrainConfig:
    """A config that trains exactly ``epochs`` epochs (no early stopping)."""
    return TrainConfig(epochs=epochs, loss_target=0.0, patience=epochs + 1, **kw)


def flat(net: Network) -> np.ndarray:
    return np.concatenate(
        [a.ravel() for w, b in zip(net.weights, net.biases, strict=True) for a in (w, b)]
    )


def live_unit_correlation(model) -> float:
    """Mean |off-diagonal correlation| between the live (non-constant) units of hidden
    layer 1 on the validation set."""
    h = model.network.activations(model.val.x)[1]
    centred = h - h.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    a = centred[:, norm > 1e-9] / norm[norm > 1e-9]
    k = a.shape[1]
    if k < 2:
        return 0.0
    gram = a.T @ a
    return float(np.abs(gram[~np.eye(k, dtype=bool)]).mean())


# --- batch independence and reproducibility ---------------------------------------------

INDEPENDENCE_CONFIGS = {
    # full batch, per-model early stopping at different epochs
    "default": TrainConfig(epochs=400),
    # every source of randomness and every regularizer at once
    "minibatch+dropout+regularizers": TrainConfig(
        hidden=(4, 3),
        epochs=40,
        batch_size=48,
        dropout=0.2,
        l1=1e-3,
        l2=1e-3,
        orthogonality=0.05,
        patience=15,
    ),
}


@pytest.mark.parametrize("name", INDEPENDENCE_CONFIGS)
def test_a_model_does_not_depend_on_its_batch_mates(name):
    config = INDEPENDENCE_CONFIGS[name]
    together = train_models(XOR, range(10), config)
    alone = train_models(XOR, [5], config)[0]
    mate = together[5]
    assert mate.seed == alone.seed == 5
    if name == "default":  # early stopping really froze models at different epochs
        assert len({m.epochs for m in together}) > 1
    assert mate.epochs == alone.epochs
    assert mate.converged == alone.converged
    np.testing.assert_allclose(flat(mate.network), flat(alone.network), rtol=0, atol=1e-5)
    assert mate.final_loss == pytest.approx(alone.final_loss, rel=1e-5, abs=1e-7)


def test_the_order_of_seeds_does_not_matter():
    config = TrainConfig(epochs=60, batch_size=50, dropout=0.1)
    forward = train_models(XOR, [3, 8, 1], config)
    backward = train_models(XOR, [1, 8, 3], config)
    assert [m.seed for m in forward] == [3, 8, 1]
    for a, b in zip(forward, backward[::-1], strict=True):
        assert a.seed == b.seed
        np.testing.assert_allclose(flat(a.network), flat(b.network), rtol=0, atol=1e-5)


def test_training_is_reproducible_for_a_fixed_seed():
    config = TrainConfig(epochs=80, batch_size=64, dropout=0.1, l1=1e-3)
    first = train_models(XOR, [7], config)[0]
    second = train_models(XOR, [7], config)[0]
    np.testing.assert_array_equal(flat(first.network), flat(second.network))
    assert (first.final_loss, first.epochs) == (second.final_loss, second.epochs)


def test_different_seeds_give_different_models():
    a, b = train_models(XOR, [0, 1], fixed_epochs(20))
    assert not np.allclose(flat(a.network), flat(b.network))


def test_data_comes_from_train_validation():
    config = TrainConfig(epochs=5, repeats=20, val_repeats=30, noise=0.2)
    model = train_models(XOR, [4], config)[0]
    train, val = train_validation(XOR, 4, repeats=20, val_repeats=30, noise=0.2)
    np.testing.assert_array_equal(model.train.x, train.x)
    np.testing.assert_array_equal(model.val.x, val.x)
    np.testing.assert_array_equal(model.val.y, val.y)


# --- the batched program computes what plain PyTorch computes ----------------------------


@pytest.fixture
def one_torch_thread():
    """Tiny reference loops run far faster on one thread (and on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_initialisation_equals_nn_linear_after_manual_seed():
    for seed in (0, 13):
        torch.manual_seed(seed)
        ref = sequential_mlp((2, 3, 3, 1), "relu", "identity")
        expected = torch.cat([p.detach().ravel() for p in ref.parameters()])
        torch.testing.assert_close(init_params((2, 3, 3, 1), seed), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "optimizer, make_torch_opt",
    [
        ("adam", lambda p, c: torch.optim.Adam(p, lr=c.lr)),
        ("adamw", lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=c.weight_decay)),
        ("sgd", lambda p, c: torch.optim.SGD(p, lr=c.lr, momentum=c.momentum)),
    ],
)
def test_batched_training_equals_a_plain_pytorch_loop(optimizer, make_torch_opt, one_torch_thread):
    config = fixed_epochs(
        60, optimizer=optimizer, lr=0.05, momentum=0.9 if optimizer == "sgd" else 0.0
    )
    seeds = [2, 9]
    batched = train_models(XOR, seeds, config)
    for model in batched:
        x = torch.tensor(model.train.x, dtype=torch.float32)
        y = torch.tensor(model.train.y, dtype=torch.float32)
        torch.manual_seed(model.seed)
        ref = sequential_mlp((2, 4, 1), "relu", "identity")
        opt = make_torch_opt(ref.parameters(), config)
        for _ in range(config.epochs):
            opt.zero_grad()
            torch.nn.functional.mse_loss(ref(x), y).backward()
            opt.step()
        expected = np.concatenate([p.detach().numpy().ravel() for p in ref.parameters()])
        np.testing.assert_allclose(flat(model.network), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "identity"])
def test_network_forward_equals_the_torch_models(activation):
    nets = [
        m.network
        for m in train_models(
            XOR,
            [0, 1, 2],
            fixed_epochs(10, hidden=(3, 2), activation=activation, output_activation="sigmoid"),
        )
    ]
    x = np.random.default_rng(0).normal(0.5, 0.5, size=(40, 2))
    batched = BatchedMLP.from_networks(nets)
    with torch.no_grad():
        out = batched(torch.tensor(x, dtype=torch.float32)).numpy()
    for i, net in enumerate(nets):
        expected = net.forward(x)
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            seq = network_to_sequential(net)(torch.tensor(x, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(seq, expected, rtol=1e-5, atol=1e-6)


def test_network_holds_float64_copies_in_spec_orientation():
    model = train_models(XOR, [0], fixed_epochs(3, hidden=(5, 3)))[0]
    net = model.network
    assert net.sizes == (2, 5, 3, 1)
    assert [w.shape for w in net.weights] == [(5, 2), (3, 5), (1, 3)]
    assert all(w.dtype == np.float64 for w in net.weights)
    # exactly representable in float32: copies of float32 weights
    for w in net.weights:
        np.testing.assert_array_equal(w, w.astype(np.float32).astype(np.float64))


# --- regularizers -------------------------------------------------------------------------


def test_l1_gives_more_near_zero_weights():
    def near_zero(models):
        w = np.concatenate([np.concatenate([x.ravel() for x in m.network.weights]) for m in models])
        return int(np.sum(np.abs(w) < 0.01))

    plain = train_models(XOR, range(6), fixed_epochs(300))
    sparse = train_models(XOR, range(6), fixed_epochs(300, l1=0.003))
    assert near_zero(sparse) >= near_zero(plain) + 10


def test_l1_and_l2_penalise_weights_not_biases():
    # W = [1, -2], b = 5, inputs 0, targets 5: data loss 0, so the objective is the penalty
    from circuit_census.training.loop import _Objective

    net = Network(
        (np.array([[1.0, -2.0]]),),
        (np.array([5.0]),),
        activation="relu",
        output_activation="identity",
    )
    model = BatchedMLP.from_networks([net])
    x = torch.zeros((1, 3, 2))
    y = torch.full((1, 3, 1), 5.0)  # output equals the bias: data loss 0
    for strength, expected in ((0.1, 0.1 * 3.0), (0.0, 0.0)):
        obj = _Objective(model, TrainConfig(l1=strength))
        mse, total = obj(model.theta, x, y)
        assert float(mse[0]) == 0.0
        assert float(total[0]) == pytest.approx(expected)
    obj = _Objective(model, TrainConfig(l2=0.5))
    assert float(obj(model.theta, x, y)[1][0]) == pytest.approx(0.5 * 5.0)


def test_l2_shrinks_the_weights():
    def norm(models):
        return sum(float(np.sum(w**2)) for m in models for w in m.network.weights)

    assert norm(train_models(XOR, range(4), fixed_epochs(300, l2=0.01))) < 0.8 * norm(
        train_models(XOR, range(4), fixed_epochs(300))
    )


def test_orthogonality_lowers_hidden_unit_correlation():
    plain = train_models(XOR, range(6), fixed_epochs(300))
    ortho = train_models(XOR, range(6), fixed_epochs(300, orthogonality=0.1))
    before = np.mean([live_unit_correlation(m) for m in plain])
    after = np.mean([live_unit_correlation(m) for m in ortho])
    assert after < 0.5 * before


def test_orthogonality_penalty_is_the_squared_off_diagonal_of_the_correlation_gram():
    t = torch.tensor([0.0, 1.0, 2.0, 3.0])
    same = torch.stack([t, 2 * t + 1], dim=1)  # correlation +1: G = [[1,1],[1,1]]
    opposite = torch.stack([t, -t], dim=1)  # correlation -1
    orthogonal = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    constant = torch.stack([t, torch.full_like(t, 3.0)], dim=1)  # a dead unit
    h = torch.stack([same, opposite, orthogonal, constant])
    pen = orthogonality_penalty([h])
    torch.testing.assert_close(pen, torch.tensor([2.0, 2.0, 0.0, 0.0]), atol=1e-5, rtol=0)
    # summed over hidden layers
    torch.testing.assert_close(orthogonality_penalty([h, h]), 2 * pen)


def test_dropout_is_off_at_evaluation():
    model = train_models(XOR, [3], fixed_epochs(100, dropout=0.5))[0]
    net = model.network
    # final_loss is the plain (no dropout) training MSE of the returned weights
    mse = float(np.mean((net.forward(model.train.x) - model.train.y) ** 2))
    assert model.final_loss == pytest.approx(mse, rel=1e-4)
    assert model.val_accuracy == accuracy(net.forward(model.val.x), model.val.y)
    # the torch model's outputs at evaluation are deterministic and equal the numpy forward
    batched = BatchedMLP.from_networks([net])
    x = torch.tensor(model.val.x, dtype=torch.float32)
    with torch.no_grad():
        once, twice = batched(x), batched(x)
    torch.testing.assert_close(once, twice, rtol=0, atol=0)
    np.testing.assert_allclose(once[0].numpy(), net.forward(model.val.x), rtol=1e-5, atol=1e-6)


def test_dropout_changes_training():
    plain = train_models(XOR, [3], fixed_epochs(50))[0]
    dropped = train_models(XOR, [3], fixed_epochs(50, dropout=0.5))[0]
    assert not np.allclose(flat(plain.network), flat(dropped.network), atol=1e-4)


# --- convergence and stopping --------------------------------------------------------------


def test_default_config_converges_for_most_xor_seeds():
    models = train_models(XOR, range(10), TrainConfig())
    assert sum(m.converged for m in models) >= 7
    for m in models:
        if m.converged:
            assert m.final_loss <= 0.02 and m.val_accuracy >= 0.99


def test_an_impossible_loss_target_keeps_every_model_flagged_not_converged():
    config = TrainConfig(epochs=30, loss_target=0.0)
    models = train_models(XOR, range(5), config)
    assert [m.seed for m in models] == list(range(5))
    assert sum(not m.converged for m in models) == 5
    assert all(m.epochs == 30 for m in models)


def test_converged_means_accuracy_and_loss_target():
    config = TrainConfig(epochs=300, min_accuracy=0.99, loss_target=0.05)
    for m in train_models(XOR, range(8), config):
        assert m.converged == (m.val_accuracy >= 0.99 and m.final_loss <= 0.05)
        assert m.val_accuracy == accuracy(m.network.forward(m.val.x), m.val.y)
    # an accuracy nobody reaches flags everyone
    strict = dataclasses.replace(config, min_accuracy=1.0, noise=0.6)
    assert not all(m.converged for m in train_models(XOR, range(4), strict))


def test_a_model_stops_at_the_loss_target():
    target = 0.05
    model = train_models(XOR, [0], TrainConfig(loss_target=target, epochs=3000))[0]
    assert model.epochs < 3000
    assert model.final_loss <= target
    # one epoch earlier it had not reached the target
    earlier = train_models(XOR, [0], fixed_epochs(model.epochs - 1))[0]
    assert earlier.final_loss > target


def test_patience_stops_a_stalled_model():
    # lr so small nothing moves beyond the relative tolerance: patience ends it
    model = train_models(XOR, [0], TrainConfig(lr=1e-9, patience=20, epochs=1000))[0]
    assert model.epochs <= 21
    assert not model.converged


def test_progress_reports_epochs_and_models_still_training():
    calls = []
    config = TrainConfig(epochs=1000, loss_target=0.05)
    models = train_models(XOR, range(4), config, progress=lambda *a: calls.append(a))
    epochs = [c[0] for c in calls]
    assert epochs[0] == 1 and all(b - a == 5 for a, b in zip(epochs, epochs[1:]))
    assert all(total == 1000 for _, total, _ in calls)
    running = [n for _, _, n in calls]
    assert running == sorted(running, reverse=True) and 0 < running[0] <= 4
    # a model is counted until the epoch it stopped at; no report once none is left
    assert all(n == sum(m.epochs >= e for m in models) for e, _, n in calls)
    assert epochs[-1] <= max(m.epochs for m in models) + 1


# --- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"lr": 0.0},
        {"lr": -1.0},
        {"lr": float("nan")},
        {"epochs": 0},
        {"batch_size": 0},
        {"l1": -0.1},
        {"l2": -0.1},
        {"orthogonality": -1.0},
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"optimizer": "rmsprop"},
        {"activation": "gelu"},
        {"output_activation": "softmax"},
        {"hidden": ()},
        {"hidden": (4, 0)},
        {"patience": 0},
        {"min_accuracy": 1.5},
        {"noise": -0.1},
        {"device": "tpu"},
    ],
)
def test_bad_config_raises_input_error(kw):
    with pytest.raises(InputError):
        TrainConfig(**kw)


def test_bad_seeds_raise_input_error():
    for seeds in ([], [-1], [1.5]):
        with pytest.raises(InputError):
            train_models(XOR, seeds, TrainConfig(epochs=1))


def test_parse_seeds():
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("3") == [3]
    assert parse_seeds("1,4,7") == [1, 4, 7]
    assert parse_seeds("0-4,9") == [0, 1, 2, 3, 4, 9]
    for bad in ("", " ", "5-2", "-3", "a", "1,,2", "1,1", "0-3,2"):
        with pytest.raises(InputError):
            parse_seeds(bad)


def test_parse_hidden():
    assert parse_hidden("4") == (4,)
    assert parse_hidden("3,3") == (3, 3)
    for bad in ("", "0", "3,", "a", "-2", "2.5"):
        with pytest.raises(InputError):
            parse_hidden(bad)

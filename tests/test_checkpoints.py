"""Training checkpoints: K evenly spaced snapshots of each model's own run, exactly the
weights the run had then, measured as a final model is."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from circuit_census.errors import InputError
from circuit_census.network import Network
from circuit_census.tasks.boolean import make_task
from circuit_census.training.loop import (
    MAX_SNAPSHOT_BYTES,
    TrainConfig,
    _Snapshots,
    accuracy,
    check_checkpoints,
    checkpoint_epochs,
    train_models,
)
from circuit_census.training.models import init_params

XOR = make_task("xor")
# Full batch, per-model early stopping at the loss target: seeds stop at different epochs.
EARLY_STOPPING = TrainConfig(epochs=400)
# Every source of training randomness (mini-batch order, dropout masks) and no stopping.
RANDOM_FIXED = TrainConfig(
    hidden=(4, 3),
    epochs=30,
    batch_size=48,
    dropout=0.2,
    l1=1e-3,
    loss_target=0.0,
    patience=1000,
)


def flat(net: Network) -> np.ndarray:
    return np.concatenate(
        [a.ravel() for w, b in zip(net.weights, net.biases, strict=True) for a in (w, b)]
    )


@pytest.fixture(scope="module")
def early_stopped():
    """Four xor models with 5 checkpoints each, stopping at different epochs."""
    return train_models(XOR, range(4), EARLY_STOPPING, checkpoints=5)


def test_checkpoint_epochs_are_rounded_even_fractions_of_the_run():
    assert checkpoint_epochs(100, 4) == (0, 25, 50, 75)
    assert checkpoint_epochs(10, 4) == (0, 2, 5, 8)  # 2.5 and 7.5 round half to even
    assert checkpoint_epochs(58, 5) == (0, 12, 23, 35, 46)  # 11.6, 23.2, 34.8, 46.4
    assert checkpoint_epochs(3, 5) == (0, 1, 1, 2, 2)  # a run shorter than K repeats epochs
    assert checkpoint_epochs(0, 3) == (0, 0, 0)
    assert checkpoint_epochs(7, 1) == (0,)
    assert checkpoint_epochs(7, 0) == ()


def test_each_model_has_k_checkpoints_evenly_spaced_over_its_own_run(early_stopped):
    totals = [m.epochs for m in early_stopped]
    assert len(set(totals)) > 1  # the models really stopped at different epochs
    for m in early_stopped:
        assert len(m.checkpoints) == 5
        epochs = [c.epoch for c in m.checkpoints]
        assert epochs == [round(k * m.epochs / 5) for k in range(5)]
        assert all(abs((b - a) - m.epochs / 5) <= 1 for a, b in zip(epochs, epochs[1:]))
        assert epochs[-1] < m.epochs  # the final model is not among them
        assert [c.progress for c in m.checkpoints] == [e / m.epochs for e in epochs]


def test_progress_zero_is_the_initial_weights(early_stopped):
    for m in early_stopped:
        first = m.checkpoints[0]
        assert (first.epoch, first.progress) == (0, 0.0)
        expected = init_params(m.network.sizes, m.seed).numpy().astype(np.float64)
        np.testing.assert_array_equal(flat(first.network), expected)
        assert first.network.activation == m.network.activation
        assert first.network.output_activation == m.network.output_activation


def test_checkpoints_are_measured_like_the_final_model(early_stopped):
    for m in early_stopped:
        for c in m.checkpoints:
            assert c.val_accuracy == accuracy(c.network.forward(m.val.x), m.val.y)
            mse = np.mean((c.network.forward(m.train.x) - m.train.y) ** 2)
            assert c.train_loss == pytest.approx(mse, rel=1e-5)  # float32 training MSE
        # learning: the initial weights are worse than the final ones
        assert m.checkpoints[0].train_loss > m.final_loss


def test_the_final_model_is_the_checkpoint_at_progress_one(early_stopped):
    m = early_stopped[0]
    final = m.final_checkpoint
    assert (final.epoch, final.progress) == (m.epochs, 1.0)
    assert final.network is m.network
    assert (final.train_loss, final.val_accuracy) == (m.final_loss, m.val_accuracy)


@pytest.mark.parametrize("config", [EARLY_STOPPING, RANDOM_FIXED], ids=["stopping", "random"])
def test_a_checkpoint_is_exactly_a_shorter_run_of_the_same_batch(config):
    """The weights at epoch e are those of the same seeds trained for e epochs: the first e
    epochs of both runs are the same computation (a model still training at e made the same
    stopping decisions), bit for bit."""
    seeds = [0, 3, 6]
    models = train_models(XOR, seeds, config, checkpoints=3)
    if config is EARLY_STOPPING:
        assert len({m.epochs for m in models}) > 1
    else:
        assert all(m.epochs == config.epochs for m in models)
    for e in sorted({c.epoch for m in models for c in m.checkpoints} - {0}):
        shorter = train_models(XOR, seeds, dataclasses.replace(config, epochs=e))
        for m, short in zip(models, shorter, strict=True):
            for c in m.checkpoints:
                if c.epoch != e:
                    continue
                assert short.epochs == e
                np.testing.assert_array_equal(flat(c.network), flat(short.network))
                assert c.train_loss == short.final_loss
                assert c.val_accuracy == short.val_accuracy


def test_checkpoints_change_nothing_else():
    with_them = train_models(XOR, range(3), RANDOM_FIXED, checkpoints=4)
    without = train_models(XOR, range(3), RANDOM_FIXED)
    for a, b in zip(with_them, without, strict=True):
        assert b.checkpoints == ()
        np.testing.assert_array_equal(flat(a.network), flat(b.network))
        assert (a.final_loss, a.val_accuracy, a.epochs) == (b.final_loss, b.val_accuracy, b.epochs)


def test_a_models_checkpoints_do_not_depend_on_its_batch_mates():
    config = TrainConfig(epochs=300)
    together = train_models(XOR, range(8), config, checkpoints=4)[5]
    alone = train_models(XOR, [5], config, checkpoints=4)[0]
    assert together.epochs == alone.epochs
    for a, b in zip(together.checkpoints, alone.checkpoints, strict=True):
        assert (a.epoch, a.progress) == (b.epoch, b.progress)
        np.testing.assert_allclose(flat(a.network), flat(b.network), rtol=0, atol=1e-5)
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-5, abs=1e-7)


def test_a_run_shorter_than_k_epochs_repeats_epochs():
    # a learning rate too small to move: patience stops every model after 6 epochs
    config = TrainConfig(lr=1e-9, patience=5, epochs=100)
    model = train_models(XOR, [2], config, checkpoints=10)[0]
    assert model.epochs < 10
    assert [c.epoch for c in model.checkpoints] == list(checkpoint_epochs(model.epochs, 10))
    assert len(model.checkpoints) == 10


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", 51])
def test_bad_checkpoint_counts_are_refused(bad):
    with pytest.raises(InputError, match="checkpoints must be a whole number from 0 to"):
        train_models(XOR, [0], TrainConfig(epochs=50), checkpoints=bad)


def test_as_many_checkpoints_as_epochs_is_every_epoch():
    model = train_models(XOR, [1], TrainConfig(epochs=6, loss_target=0.0), checkpoints=6)[0]
    assert [c.epoch for c in model.checkpoints] == [0, 1, 2, 3, 4, 5]


def test_snapshots_that_would_not_fit_in_memory_are_refused_before_training():
    config = TrainConfig(hidden=(1000,), epochs=3000)  # 4001 parameters per xor model
    need = 4001 * 3001 * 30 * 4
    assert need > MAX_SNAPSHOT_BYTES
    with pytest.raises(InputError, match=r"1\.34 GiB, above the limit of 1 GiB"):
        train_models(XOR, range(30), config, checkpoints=10)
    # without checkpoints nothing is kept, so nothing is refused; fewer models fit
    assert check_checkpoints(0, config, 30, 4001) == 0
    assert check_checkpoints(10, config, 20, 4001) == 10


def test_snapshots_kept_on_the_device_reach_the_store_in_order():
    """The GPU path: snapshots wait on the device and move together at sync points."""
    theta = torch.zeros((2, 3))
    snapshots = _Snapshots(epochs=6, theta=theta)
    for t in range(7):  # one parameter tensor, changed in place as training does
        theta.copy_(t + torch.arange(2.0)[:, None])
        snapshots.add(theta, flush=t % 3 == 2 or t == 6)
    picked = snapshots.at([4, 6])  # model 0 after 4 epochs, model 1 after 6
    np.testing.assert_array_equal(picked.numpy(), [[4.0] * 3, [7.0] * 3])
    with pytest.raises(AssertionError):
        _Snapshots(epochs=2, theta=theta).at([0, 0])  # nothing kept yet

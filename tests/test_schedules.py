"""Tests for wn_keras.schedules against hand-computed learning rates."""

import math

import keras
import numpy as np
import pytest

from wn_keras import schedules


def _reference(step, lr, milestones, steps_per_epoch, warmup_steps, w_lr):
    """The schedule written out directly from its definition."""
    if step < warmup_steps:
        done = step / warmup_steps
        return w_lr + done**2 * (lr - w_lr)
    epoch = step // steps_per_epoch
    rate = lr
    for milestone, factor in milestones:
        if epoch >= milestone:
            rate *= factor
    return rate


@pytest.mark.parametrize(
    "annealing_type, num_epochs, expected",
    [
        (0, 200, []),
        (1, 200, [(100, 0.1), (150, 0.1)]),
        (2, 200, [(67, 0.1), (133, 0.1)]),
        (3, 200, [(60, 0.2), (120, 0.2), (160, 0.2)]),
        (4, 200, [(91, 0.1), (136, 0.1)]),
        (4, 10, [(91, 0.1), (136, 0.1)]),
        (5, 182, [(91, 0.1), (136, 0.1)]),
        (5, 20, [(10, 0.1), (15, 0.1)]),
    ],
)
def test_milestones_match_hand_computation(
    annealing_type, num_epochs, expected
):
    assert schedules.decay_milestones(annealing_type, num_epochs) == expected


@pytest.mark.parametrize("annealing_type", schedules.ANNEALING_TYPES)
def test_schedule_values_per_step(annealing_type):
    steps_per_epoch, num_epochs = 3, 200
    schedule = schedules.PaperSchedule(
        0.1, annealing_type, num_epochs, steps_per_epoch
    )
    milestones = schedules.decay_milestones(annealing_type, num_epochs)
    steps = np.arange(0, steps_per_epoch * num_epochs, 7)
    got = [float(schedule(int(s))) for s in steps]
    want = [
        _reference(s, 0.1, milestones, steps_per_epoch, 0, 0) for s in steps
    ]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_wrn_schedule_hand_values():
    schedule = schedules.PaperSchedule(0.1, 3, 10, steps_per_epoch=5)
    # Epoch 2 is before 30 % of 10 epochs; 3 is the first decayed epoch.
    assert float(schedule(14)) == pytest.approx(0.1)
    assert float(schedule(15)) == pytest.approx(0.02)
    assert float(schedule(30)) == pytest.approx(0.004)
    assert float(schedule(49)) == pytest.approx(0.0008)


def test_warmup_is_quadratic_then_schedule():
    schedule = schedules.PaperSchedule(
        0.1, 1, 4, steps_per_epoch=10, warmup_epochs=1, warmup_lr=0.001
    )
    # a = t / 10; lr = 0.001 + a^2 * 0.099.
    assert float(schedule(0)) == pytest.approx(0.001)
    assert float(schedule(5)) == pytest.approx(0.001 + 0.25 * 0.099)
    assert float(schedule(9)) == pytest.approx(0.001 + 0.81 * 0.099)
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(20)) == pytest.approx(0.01)  # epoch 2 of 4
    assert float(schedule(30)) == pytest.approx(0.001)


def test_fractional_warmup_rounds_steps_up():
    schedule = schedules.PaperSchedule(
        1.0, 0, 1, steps_per_epoch=3, warmup_epochs=0.5
    )
    assert schedule.warmup_steps == math.ceil(1.5)
    assert float(schedule(1)) == pytest.approx(0.25)
    assert float(schedule(2)) == pytest.approx(1.0)


def test_driven_by_optimizer_step_counter():
    schedule = schedules.PaperSchedule(0.5, 1, 2, steps_per_epoch=2)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(0.0)
    optimizer.build([variable])
    rates = []
    for _ in range(4):
        rates.append(float(optimizer.learning_rate))
        optimizer.apply([keras.ops.ones(())], [variable])
    assert rates == pytest.approx([0.5, 0.5, 0.05, 0.05])


def test_config_round_trip():
    schedule = schedules.PaperSchedule(0.05, 3, 30, 7, 2.5, 0.001)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, schedules.PaperSchedule)
    for step in (0, 10, 17, 100, 209):
        assert float(restored(step)) == pytest.approx(float(schedule(step)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(learning_rate=-0.1), r"learning_rate must be positive.*-0\.1"),
        (dict(learning_rate=0.0), r"learning_rate must be positive.*0\.0"),
        (dict(annealing_type=6), r"annealing_type must be one of.*=6"),
        (dict(num_epochs=0), r"num_epochs must be a positive.*=0"),
        (dict(steps_per_epoch=0), r"steps_per_epoch must be a positive.*=0"),
        (dict(warmup_epochs=-1), r"warmup_epochs must be >= 0.*=-1"),
        (dict(warmup_lr=-1e-3), r"warmup_lr must be >= 0.*=-0\.001"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = dict(learning_rate=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        schedules.PaperSchedule(**arguments)

"""Learning-rate schedules of the paper's training set-up.

Arpit, Campos & Bengio, "How to Initialize your Network? Robust
Initialization for WeightNorm & ResNets", NeurIPS 2019, arXiv:1906.02341,
train with SGD under one of a few step schedules, optionally after a
quadratic warmup. `PaperSchedule` puts both into one Keras
`LearningRateSchedule`, so it is driven by the optimizer's step counter
and a resumed run continues it exactly.

Annealing types (our numbering; the paper names the schedules but not the
numbers, so the mapping below is this package's choice):

| type | schedule |
|---|---|
| 0 | constant |
| 1 | x0.1 at 1/2 and at 3/4 of `num_epochs` |
| 2 | x0.1 at 1/3 and at 2/3 of `num_epochs` |
| 3 | Wide-ResNet schedule: x0.2 at 30 %, 60 % and 80 % of `num_epochs` |
| 4 | He et al.: x0.1 at epochs 91 and 136 (fixed epochs) |
| 5 | He et al. scaled to the run: x0.1 at 91/182 and 136/182 of it |

A decay "at epoch m" applies from the start of the (0-based) epoch `m`,
i.e. after `m` full epochs; fractional milestones are rounded to the
nearest epoch. Epochs count from the start of training, warmup included.
"""

from __future__ import annotations

import math

import keras
from keras import ops

ANNEALING_TYPES = (0, 1, 2, 3, 4, 5)

# He et al. (2016) decay at epochs 91 and 136 of a 182-epoch run.
_HE_EPOCHS = (91, 136)
_HE_LENGTH = 182


def decay_milestones(
    annealing_type: int, num_epochs: int
) -> list[tuple[int, float]]:
    """Lists the epochs at which a schedule multiplies the learning rate.

    Args:
        annealing_type: One of `ANNEALING_TYPES` (see the module docstring).
        num_epochs: Length of training in epochs, at least 1.

    Returns:
        `(epoch, factor)` pairs in increasing epoch order: from the start
        of 0-based epoch `epoch` on, the rate is multiplied by `factor`
        (the factors of earlier milestones still apply).

    Raises:
        ValueError: If `annealing_type` is unknown or `num_epochs < 1`.

    Example:

    >>> decay_milestones(1, 200)
    [(100, 0.1), (150, 0.1)]
    """
    if annealing_type not in ANNEALING_TYPES:
        raise ValueError(
            f"annealing_type must be one of {ANNEALING_TYPES} (0 constant, "
            "1 x0.1 at 1/2 and 3/4, 2 x0.1 at 1/3 and 2/3, 3 WRN x0.2 at "
            "30/60/80 %, 4 He et al. epochs 91/136, 5 He et al. scaled); "
            f"received annealing_type={annealing_type!r}."
        )
    if num_epochs < 1:
        raise ValueError(
            "num_epochs must be a positive number of epochs; received "
            f"num_epochs={num_epochs!r}."
        )

    def at(fractions: tuple[float, ...], factor: float):
        return [(round(f * num_epochs), factor) for f in fractions]

    if annealing_type == 0:
        return []
    if annealing_type == 1:
        return at((1 / 2, 3 / 4), 0.1)
    if annealing_type == 2:
        return at((1 / 3, 2 / 3), 0.1)
    if annealing_type == 3:
        return at((0.3, 0.6, 0.8), 0.2)
    if annealing_type == 4:
        return [(epoch, 0.1) for epoch in _HE_EPOCHS]
    return at(tuple(e / _HE_LENGTH for e in _HE_EPOCHS), 0.1)


@keras.saving.register_keras_serializable(package="wn_keras")
class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Quadratic warmup followed by one of the paper's step schedules.

    For optimizer step `t` (0-based), with `W = ceil(warmup_epochs *
    steps_per_epoch)` warmup steps:

    - while `t < W`: `lr_t = warmup_lr + a**2 * (learning_rate -
      warmup_lr)` with `a = t / W`, the fraction of the warmup done;
    - afterwards: `lr_t = learning_rate * prod(factors of the milestones
      reached by epoch floor(t / steps_per_epoch))`.

    Args:
        learning_rate: Base learning rate, positive.
        annealing_type: One of `ANNEALING_TYPES`, see the module docstring.
        num_epochs: Length of training in epochs, used by the types whose
            milestones are fractions of the run.
        steps_per_epoch: Optimizer steps per epoch, positive.
        warmup_epochs: Length of the warmup in epochs (may be fractional);
            0 disables it.
        warmup_lr: Learning rate at the first warmup step, non-negative.

    Raises:
        ValueError: For a non-positive `learning_rate` or
            `steps_per_epoch`, a negative `warmup_epochs` or `warmup_lr`,
            or an invalid `annealing_type` / `num_epochs`.

    Example:

    >>> schedule = PaperSchedule(0.1, annealing_type=1, num_epochs=4,
    ...                          steps_per_epoch=10)
    >>> round(float(schedule(25)), 6)  # epoch 2 of 4: after the 1/2 decay
    0.01
    """

    def __init__(
        self,
        learning_rate: float,
        annealing_type: int = 0,
        num_epochs: int = 1,
        steps_per_epoch: int = 1,
        warmup_epochs: float = 0.0,
        warmup_lr: float = 0.0,
    ):
        if not learning_rate > 0:
            raise ValueError(
                "learning_rate must be positive; received "
                f"learning_rate={learning_rate!r}."
            )
        if steps_per_epoch < 1:
            raise ValueError(
                "steps_per_epoch must be a positive number of steps; "
                f"received steps_per_epoch={steps_per_epoch!r}."
            )
        if warmup_epochs < 0:
            raise ValueError(
                "warmup_epochs must be >= 0 (0 disables the warmup); "
                f"received warmup_epochs={warmup_epochs!r}."
            )
        if warmup_lr < 0:
            raise ValueError(
                f"warmup_lr must be >= 0; received warmup_lr={warmup_lr!r}."
            )
        self.milestones = decay_milestones(annealing_type, num_epochs)
        self.learning_rate = float(learning_rate)
        self.annealing_type = int(annealing_type)
        self.num_epochs = int(num_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_lr = float(warmup_lr)
        self.warmup_steps = int(math.ceil(warmup_epochs * steps_per_epoch))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        epoch = ops.floor(step / float(self.steps_per_epoch))
        rate = ops.convert_to_tensor(self.learning_rate, "float32")
        for milestone, factor in self.milestones:
            rate = ops.where(epoch >= float(milestone), rate * factor, rate)
        if self.warmup_steps == 0:
            return rate
        done = ops.minimum(step / float(self.warmup_steps), 1.0)
        ramp = self.warmup_lr + ops.square(done) * (
            self.learning_rate - self.warmup_lr
        )
        return ops.where(step < float(self.warmup_steps), ramp, rate)

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "annealing_type": self.annealing_type,
            "num_epochs": self.num_epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
            "warmup_lr": self.warmup_lr,
        }

"""A 30-layer weight-normalized MLP on scikit-learn's digits.

With the proposed initialization every hidden layer has
``g = sqrt(2 * fan_in / fan_out) = sqrt(2)``, which keeps the norm of the
signal constant through the ReLUs, so plain SGD trains the deep network.
With default weight normalization on orthogonal directions
``g = ||v|| = 1``, and each ReLU layer halves the squared norm of the
signal: after 30 layers the input is scaled by about 2**-15, and the
network stays near chance (arXiv:1906.02341, Section 3 and Figure 2).
"""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import wn_keras

DEPTH = 30
WIDTH = 128
EPOCHS = 30
CHANCE = 0.1


def _digits():
    images, labels = load_digits(return_X_y=True)
    x = (images / 16.0 - 0.5).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, labels = x[order], labels[order]
    train = 1400
    return (x[:train], labels[:train]), (x[train:], labels[train:])


def _deep_mlp(kernel_initializer, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,))
    h = inputs
    for _ in range(DEPTH):
        h = wn_keras.WeightNorm(
            keras.layers.Dense(
                WIDTH,
                activation="relu",
                kernel_initializer=kernel_initializer,
                bias_initializer="zeros",
            )
        )(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def _validation_accuracy(kernel_initializer, seed=0):
    (x, y), (x_val, y_val) = _digits()
    model = _deep_mlp(kernel_initializer, seed)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=64, epochs=EPOCHS, verbose=0)
    return model.evaluate(x_val, y_val, verbose=0)[1]


@pytest.mark.parametrize(
    "name, initializer, trains",
    [
        ("proposed_orthogonal", wn_keras.ProposedOrthogonal(seed=1), True),
        ("default_orthogonal", keras.initializers.Orthogonal(seed=1), False),
    ],
)
def test_deep_wn_mlp_trains_only_with_the_proposed_init(
    name, initializer, trains
):
    accuracy = _validation_accuracy(initializer)
    if trains:
        assert accuracy > 0.9, (name, accuracy)
    else:
        assert accuracy < CHANCE + 0.15, (name, accuracy)

"""Tests of data-dependent initialization against a numpy re-implementation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from wn_keras import WeightNorm, data_dependent_init
from wn_keras.data_init import DEFAULT_EPSILON

WIDTHS = (12, 9, 6)


def _mlp(widths=WIDTHS, input_dim=5, seed=0, sequential=False):
    keras.utils.set_random_seed(seed)
    layers = [
        WeightNorm(keras.layers.Dense(width, activation="relu"), name=f"wn{i}")
        for i, width in enumerate(widths)
    ]
    if sequential:
        return keras.Sequential([keras.Input((input_dim,))] + layers)
    inputs = keras.Input((input_dim,))
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, h)


def _batch(n=200, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    # Shifted and scaled, so that the initial statistics are far from 0/1.
    return (3.0 + 2.0 * rng.normal(size=(n, dim))).astype("float32")


def _numpy_reference(directions, x, epsilon=DEFAULT_EPSILON):
    """Salimans & Kingma's init written out in numpy, layer by layer."""
    magnitudes, biases = [], []
    h = x.astype("float64")
    for v in directions:
        v = v.astype("float64")
        t = h @ (v / np.linalg.norm(v, axis=0))
        mu, var = t.mean(axis=0), t.var(axis=0)
        g = 1.0 / np.sqrt(var + epsilon)
        magnitudes.append(g)
        biases.append(-mu * g)
        h = np.maximum(t * g - mu * g, 0.0)
    return magnitudes, biases


@pytest.mark.parametrize("sequential", [False, True])
def test_matches_numpy_reference_on_a_three_layer_mlp(sequential):
    model = _mlp(sequential=sequential)
    x = _batch()
    directions = [
        np.asarray(model.get_layer(f"wn{i}").direction)
        for i in range(len(WIDTHS))
    ]
    data_dependent_init(model, x)
    magnitudes, biases = _numpy_reference(directions, x)
    for i in range(len(WIDTHS)):
        layer = model.get_layer(f"wn{i}")
        np.testing.assert_allclose(layer.magnitude, magnitudes[i], rtol=1e-4)
        np.testing.assert_allclose(layer.layer.bias, biases[i], atol=1e-4)
        # Directions are left alone.
        np.testing.assert_array_equal(layer.direction, directions[i])


def test_pre_activations_are_standardized_after_init():
    model = _mlp(widths=(16, 16, 16, 16))
    x = _batch()
    data_dependent_init(model, x)
    h = x.astype("float64")
    for i in range(4):
        layer = model.get_layer(f"wn{i}")
        kernel = np.asarray(layer.effective_kernel(), "float64")
        pre = h @ kernel + np.asarray(layer.layer.bias)
        np.testing.assert_allclose(pre.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(pre.std(axis=0), 1.0, atol=1e-3)
        h = np.maximum(pre, 0.0)


def test_returned_statistics():
    model = _mlp()
    x = _batch()
    first = np.asarray(model.get_layer("wn0").direction)
    stats = data_dependent_init(model, x)
    assert list(stats) == ["wn0", "wn1", "wn2"]
    # Before: the first layer computed x @ v with g = ||v||, b = 0.
    pre = x.astype("float64") @ first
    np.testing.assert_allclose(
        stats["wn0"]["mean_before"], pre.mean(0), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        stats["wn0"]["std_before"], pre.std(0), rtol=1e-4
    )
    for entry in stats.values():
        np.testing.assert_allclose(entry["mean_after"], 0.0, atol=1e-4)
        np.testing.assert_allclose(entry["std_after"], 1.0, atol=1e-3)


def test_convolutions_normalize_over_batch_and_positions():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((7, 7, 2))
    h = WeightNorm(keras.layers.Conv2D(4, 3), name="conv")(inputs)
    h = keras.layers.ReLU()(h)
    h = WeightNorm(keras.layers.Conv2DTranspose(3, 2), name="deconv")(h)
    model = keras.Model(inputs, h)
    x = np.random.default_rng(2).normal(size=(16, 7, 7, 2)) * 4 + 1
    x = x.astype("float32")
    data_dependent_init(model, x)
    conv_out = keras.Model(inputs, model.get_layer("conv").output)(x)
    conv_out = np.asarray(conv_out, "float64")
    np.testing.assert_allclose(conv_out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(conv_out.std(axis=(0, 1, 2)), 1, atol=1e-3)
    out = np.asarray(model(x), "float64")
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_nested_model_and_layer_without_bias():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential(
        [
            keras.Input((5,)),
            WeightNorm(keras.layers.Dense(6, use_bias=False), name="nobias"),
        ],
        name="inner",
    )
    inputs = keras.Input((5,))
    outputs = WeightNorm(keras.layers.Dense(4), name="outer")(inner(inputs))
    model = keras.Model(inputs, outputs)
    x = _batch()
    stats = data_dependent_init(model, x)
    assert set(stats) == {"nobias", "outer"}
    hidden = np.asarray(inner(x), "float64")
    # Without a bias only the scale is set: unit std, mean kept.
    np.testing.assert_allclose(hidden.std(axis=0), 1.0, atol=1e-3)
    out = np.asarray(model(x), "float64")
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-4)


def test_each_layer_runs_once(monkeypatch):
    model = _mlp(widths=(8,) * 6)
    calls = []
    original = WeightNorm._scaled_linear

    def counting(self, inputs, scale):
        calls.append(self.name)
        return original(self, inputs, scale)

    monkeypatch.setattr(WeightNorm, "_scaled_linear", counting)
    data_dependent_init(model, _batch())
    assert calls == [f"wn{i}" for i in range(6)]


def test_mirrored_replicas_end_identical():
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = _batch()
    with strategy.scope():
        model = _mlp()
        directions = [
            np.asarray(model.get_layer(f"wn{i}").direction)
            for i in range(len(WIDTHS))
        ]
        data_dependent_init(model, x)
    magnitudes, biases = _numpy_reference(directions, x)
    for i in range(len(WIDTHS)):
        layer = model.get_layer(f"wn{i}")
        for variable, expected in (
            (layer.magnitude, magnitudes[i]),
            (layer.layer.bias, biases[i]),
        ):
            replicas = [np.asarray(v) for v in variable.value.values]
            assert len(replicas) == 2
            np.testing.assert_array_equal(replicas[0], replicas[1])
            np.testing.assert_allclose(
                replicas[1], expected, rtol=1e-4, atol=1e-4
            )


def test_error_without_weight_norm_layers():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="contains no WeightNorm layer"):
        data_dependent_init(model, np.ones((4, 3), "float32"))


def test_error_for_unbuilt_model():
    model = keras.Sequential([WeightNorm(keras.layers.Dense(2))])
    with pytest.raises(ValueError, match="is not built"):
        data_dependent_init(model, np.ones((4, 3), "float32"))


def test_error_for_a_batch_that_does_not_fit():
    model = _mlp()
    with pytest.raises(ValueError, match="does not fit the model's inputs"):
        data_dependent_init(model, np.ones((4, 7), "float32"))
    with pytest.raises(ValueError, match="at least 2 examples"):
        data_dependent_init(model, np.ones((1, 5), "float32"))


def test_error_for_subclassed_model(subclassed_wn_model):
    with pytest.raises(ValueError, match="subclassed"):
        data_dependent_init(subclassed_wn_model, np.ones((4, 3), "float32"))


def test_error_for_negative_epsilon():
    with pytest.raises(ValueError, match="`epsilon` must be >= 0"):
        data_dependent_init(_mlp(), _batch(), epsilon=-1.0)

"""Tests for wn_keras.diagnostics against hand-written numpy references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import wn_keras
from wn_keras import diagnostics

# float32 network, float64 numpy reference.
RTOL = 1e-4
NUM_EXAMPLES = 7
INPUT_SHAPE = (2, 6)  # Dense acts on the last axis; norms span both.
HIDDEN_UNITS = (8, 7, 6)
NUM_CLASSES = 2


def _wn_dense(units: int, name: str) -> wn_keras.WeightNorm:
    return wn_keras.WeightNorm(
        keras.layers.Dense(
            units,
            kernel_initializer=wn_keras.ProposedHe(seed=len(name) + units),
            bias_initializer=keras.initializers.RandomNormal(seed=units),
        ),
        name=name,
    )


def _small_mlp() -> keras.Model:
    """Three WN Dense+ReLU layers named as the model builders name them."""
    inputs = keras.Input(INPUT_SHAPE)
    h = inputs
    for i, units in enumerate(HIDDEN_UNITS, start=1):
        h = _wn_dense(units, f"layer{i}")(h)
        h = keras.layers.ReLU(name=f"layer{i}_relu")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    outputs = _wn_dense(NUM_CLASSES, "classifier")(h)
    return keras.Model(inputs, outputs)


def _weights(model: keras.Model, name: str) -> tuple[np.ndarray, np.ndarray]:
    wrapper = model.get_layer(name)
    kernel = np.asarray(wrapper.effective_kernel(), dtype=np.float64)
    return kernel, np.asarray(wrapper.layer.bias, dtype=np.float64)


def _norms(array: np.ndarray) -> np.ndarray:
    return np.linalg.norm(array.reshape(len(array), -1), axis=1)


def _output_gradient(loss: str, y: np.ndarray, seed: int) -> np.ndarray:
    """dL/dy for the two documented losses, from their formulas."""
    rng = np.random.default_rng(seed)
    if loss == "random_projection":
        return rng.standard_normal(y.shape)
    labels = rng.integers(0, y.shape[1], size=len(y))
    shifted = np.exp(y - y.max(axis=1, keepdims=True))
    softmax = shifted / shifted.sum(axis=1, keepdims=True)
    return softmax - np.eye(y.shape[1])[labels]


@pytest.mark.parametrize("loss", ["random_projection", "cross_entropy"])
def test_mlp_ratios_match_numpy_backprop(loss):
    model = _small_mlp()
    x = np.random.default_rng(1).standard_normal((NUM_EXAMPLES, *INPUT_SHAPE))

    # Numpy forward pass with the effective kernels g * v / ||v||.
    pre_activations, hidden = [], []
    h = x
    for i in range(1, len(HIDDEN_UNITS) + 1):
        kernel, bias = _weights(model, f"layer{i}")
        pre_activations.append(h @ kernel + bias)
        h = np.maximum(pre_activations[-1], 0.0)
        hidden.append(h)
    kernel, bias = _weights(model, "classifier")
    y = h.reshape(NUM_EXAMPLES, -1) @ kernel + bias

    # Hand-written backprop from dL/dy down to each post-ReLU output.
    grad = (_output_gradient(loss, y, seed=3) @ kernel.T).reshape(h.shape)
    gradients = [grad]
    for i in range(len(HIDDEN_UNITS), 1, -1):
        kernel, _ = _weights(model, f"layer{i}")
        grad = (grad * (pre_activations[i - 1] > 0)) @ kernel.T
        gradients.insert(0, grad)

    expected_forward = np.stack([_norms(h) / _norms(x) for h in hidden], 1)
    backward = np.stack([_norms(g) for g in gradients], 1)
    expected_backward = backward / backward[:, -1:]

    # The reference is meaningful only if no layer is dead.
    assert np.all(expected_forward > 0)
    assert np.all(np.isfinite(expected_backward) & (expected_backward > 0))

    result = diagnostics.signal_propagation(model, x, loss=loss, seed=3)

    assert result.names == ("layer1_relu", "layer2_relu", "layer3_relu")
    np.testing.assert_allclose(
        result.forward_ratios, expected_forward, rtol=RTOL
    )
    np.testing.assert_allclose(
        result.backward_ratios, expected_backward, rtol=RTOL
    )
    np.testing.assert_allclose(
        result.forward_mean, expected_forward.mean(0), rtol=RTOL
    )
    np.testing.assert_allclose(
        result.forward_std, expected_forward.std(0), rtol=1e-3
    )
    np.testing.assert_allclose(
        result.backward_mean, expected_backward.mean(0), rtol=RTOL
    )
    np.testing.assert_allclose(
        result.backward_std, expected_backward.std(0), rtol=1e-3
    )


def _small_resnet(width: int = 6, branch: int = 4) -> keras.Model:
    """Two blocks h <- h + W2 ReLU(W1 h), plus layers the default skips."""
    inputs = keras.Input((width,))
    h = keras.layers.Identity(name="stem")(inputs)
    for b in (1, 2):
        branch_h = _wn_dense(branch, f"stage1_block{b}_conv1")(h)
        branch_h = keras.layers.ReLU(name=f"stage1_block{b}_relu")(branch_h)
        branch_h = _wn_dense(width, f"stage1_block{b}_conv2")(branch_h)
        h = keras.layers.Add(name=f"stage1_block{b}_add")([h, branch_h])
    outputs = _wn_dense(3, "classifier")(h)
    return keras.Model(inputs, outputs)


def test_resnet_blocks_picked_by_default_and_match_numpy():
    model = _small_resnet()
    x = np.random.default_rng(2).standard_normal((NUM_EXAMPLES, 6))

    h, blocks, caches = x, [], []
    for b in (1, 2):
        w1, b1 = _weights(model, f"stage1_block{b}_conv1")
        w2, b2 = _weights(model, f"stage1_block{b}_conv2")
        pre = h @ w1 + b1
        caches.append((w1, w2, pre))
        h = h + np.maximum(pre, 0.0) @ w2 + b2
        blocks.append(h)
    kernel, bias = _weights(model, "classifier")
    y = h @ kernel + bias
    grad_2 = _output_gradient("random_projection", y, seed=0) @ kernel.T
    w1, w2, pre = caches[1]
    grad_1 = grad_2 + ((grad_2 @ w2.T) * (pre > 0)) @ w1.T
    assert np.all((pre > 0).any(axis=1))  # The branch is not dead.

    result = diagnostics.signal_propagation(model, x)

    assert result.names == ("stage1_block1_add", "stage1_block2_add")
    np.testing.assert_allclose(
        result.forward_ratios,
        np.stack([_norms(b) / _norms(x) for b in blocks], 1),
        rtol=RTOL,
    )
    np.testing.assert_allclose(
        result.backward_ratios[:, 0], _norms(grad_1) / _norms(grad_2), rtol=RTOL
    )
    np.testing.assert_allclose(result.backward_ratios[:, 1], 1.0, rtol=RTOL)


def test_layer_names_override_the_default_and_keep_their_order():
    model = _small_mlp()
    x = np.random.default_rng(4).standard_normal((3, *INPUT_SHAPE))
    result = diagnostics.signal_propagation(
        model, x, layer_names=["layer3_relu", "layer1"]
    )
    assert result.names == ("layer3_relu", "layer1")
    # The last named layer is the backward reference.
    np.testing.assert_allclose(result.backward_ratios[:, 1], 1.0, rtol=RTOL)


def test_plot_draws_two_labelled_panels_with_the_means():
    ratios = np.array([[1.0, 2.0, 4.0], [3.0, 2.0, 0.0]])
    result = diagnostics.SignalPropagation(
        ("a", "b", "c"), ratios, ratios[:, ::-1]
    )
    figure = result.plot(label="run")
    assert len(figure.axes) == 2
    forward_axes, backward_axes = figure.axes
    assert "Forward" in forward_axes.get_title()
    assert "Backward" in backward_axes.get_title()
    for ax in figure.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        assert ax.get_legend() is not None
    np.testing.assert_allclose(
        forward_axes.lines[0].get_ydata(), [2.0, 2.0, 2.0]
    )
    np.testing.assert_allclose(
        forward_axes.lines[0].get_xdata(), [1.0, 2.0, 3.0]
    )
    # Hand-computed standard deviations: |1 - 3| / 2, 0, |4 - 0| / 2.
    np.testing.assert_allclose(result.forward_std, [1.0, 0.0, 2.0])


def test_plot_into_given_axes_returns_their_figure():
    import matplotlib.figure

    figure = matplotlib.figure.Figure()
    axes = figure.subplots(2, 2)
    result = diagnostics.SignalPropagation(
        ("a",), np.ones((2, 1)), np.ones((2, 1))
    )
    assert result.plot(axes=axes[1]) is figure
    assert len(axes[1, 0].containers) == 1 and not axes[0, 0].containers


# ---------------------------------------------------------------------------
# Hessian spectral norm.


def _linear_regression_data(num_examples=32, dim=4):
    """Inputs with one dominant direction, so the top eigenvalue is clear."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((num_examples, dim)) * np.array(
        [3.0, 1.0, 0.7, 0.3]
    )
    y = rng.standard_normal((num_examples, 1))
    return x.astype("float32"), y.astype("float32")


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_hessian_of_linear_regression_matches_numpy(sign):
    x, y = _linear_regression_data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    mse = keras.losses.MeanSquaredError()

    def loss_fn(y_true, y_pred):
        return sign * mse(y_true, y_pred)

    # L = sign * mean((X w + b - y)^2): H = sign * 2 A^T A / n, A = [X, 1].
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(float)
    hessian = sign * 2.0 * design.T @ design / len(x)
    eigenvalues = np.linalg.eigvalsh(hessian)
    expected = np.abs(eigenvalues).max()

    # Four equal batches: their average HVP is the full-data HVP.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    result = diagnostics.hessian_spectral_norm(
        model, dataset, loss_fn, iterations=40
    )
    np.testing.assert_allclose(result.estimate, expected, rtol=1e-3)
    np.testing.assert_allclose(result.eigenvalue, sign * expected, rtol=1e-3)
    assert result.history.shape == (40,)
    # Power iteration approaches |lambda_max| from below.
    assert np.all(result.history <= expected * (1 + 1e-4))


def test_hessian_of_tiny_tanh_net_matches_full_hessian():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 3)).astype("float32")
    y = rng.standard_normal((16, 1)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                2,
                activation="tanh",
                kernel_initializer=keras.initializers.RandomNormal(seed=1),
                bias_initializer=keras.initializers.RandomNormal(seed=2),
            ),
            keras.layers.Dense(1),
        ]
    )
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    sizes = [int(np.prod(s)) for s in shapes]
    flat = tf.constant(
        np.concatenate([np.ravel(v) for v in model.trainable_variables]).astype(
            "float64"
        )
    )

    def loss_of(theta):
        # The same net written out by hand on a flat parameter vector.
        w1, b1, w2, b2 = [
            tf.reshape(part, shape)
            for part, shape in zip(tf.split(theta, sizes), shapes, strict=True)
        ]
        pred = tf.tanh(x.astype("float64") @ w1 + b1) @ w2 + b2
        return tf.reduce_mean((pred - y.astype("float64")) ** 2)

    with tf.GradientTape() as outer:
        outer.watch(flat)
        with tf.GradientTape() as inner:
            inner.watch(flat)
            loss = loss_of(flat)
        gradient = inner.gradient(loss, flat)
    hessian = outer.jacobian(gradient, flat).numpy()
    eigenvalues = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    expected = np.abs(eigenvalues).max()

    result = diagnostics.hessian_spectral_norm(
        model,
        [(x[:8], y[:8]), (x[8:], y[8:]), (x, y)],
        keras.losses.MeanSquaredError(),
        iterations=100,
        num_batches=2,
    )
    np.testing.assert_allclose(result.estimate, expected, rtol=1e-3)


# ---------------------------------------------------------------------------
# Errors.


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="`loss` must be one of .*'mse'"):
        diagnostics.signal_propagation(
            _small_mlp(), np.ones((2, *INPUT_SHAPE)), loss="mse"
        )


def test_missing_layer_names_list_what_exists():
    with pytest.raises(
        ValueError, match=r"\['nope'\] are not in the model.*layer2_relu"
    ):
        diagnostics.signal_propagation(
            _small_mlp(), np.ones((2, *INPUT_SHAPE)), layer_names=["nope"]
        )


def test_empty_layer_names_are_rejected():
    with pytest.raises(ValueError, match="`layer_names` must name one or"):
        diagnostics.signal_propagation(
            _small_mlp(), np.ones((2, *INPUT_SHAPE)), layer_names=[]
        )


def test_no_default_layer_lists_what_exists():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="hidden")(inputs))
    with pytest.raises(ValueError, match="no layer whose name.*'hidden'"):
        diagnostics.signal_propagation(model, np.ones((2, 3)))


@pytest.mark.parametrize(
    "shape", [(2, 6), (2, 2, 5), (0, *INPUT_SHAPE)], ids=str
)
def test_x_that_does_not_fit_is_rejected(shape):
    with pytest.raises(ValueError, match=r"`x` must be .*received shape"):
        diagnostics.signal_propagation(_small_mlp(), np.ones(shape))


def test_model_with_two_inputs_is_rejected():
    first, second = keras.Input((2,)), keras.Input((2,))
    model = keras.Model(
        [first, second], keras.layers.Add(name="layer1_relu")([first, second])
    )
    with pytest.raises(ValueError, match="exactly one input.*received 2"):
        diagnostics.signal_propagation(model, np.ones((2, 2)))


def test_cross_entropy_needs_two_dimensional_output():
    inputs = keras.Input((2, 3))
    outputs = keras.layers.ReLU(name="layer1_relu")(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match=r"cross_entropy.*shape \(2, 2, 3\)"):
        diagnostics.signal_propagation(
            model, np.ones((2, 2, 3)), loss="cross_entropy"
        )


def test_subclassed_model_without_input_is_rejected():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, name="layer1_relu")

        def call(self, x):
            return self.dense(x)

    model = Net()
    model(np.ones((1, 3)))
    with pytest.raises(ValueError, match="`model` must be a functional"):
        diagnostics.signal_propagation(model, np.ones((2, 3)))


def test_plot_needs_two_axes():
    result = diagnostics.SignalPropagation(
        ("a",), np.ones((2, 1)), np.ones((2, 1))
    )
    with pytest.raises(ValueError, match="two matplotlib axes.*received 3"):
        result.plot(axes=[None, None, None])


def _regression_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def test_iterations_below_one_are_rejected():
    x, y = _linear_regression_data()
    with pytest.raises(ValueError, match="`iterations` must be >= 1.*0"):
        diagnostics.hessian_spectral_norm(
            _regression_model(),
            [(x, y)],
            keras.losses.mean_squared_error,
            iterations=0,
        )


def test_num_batches_below_one_are_rejected():
    x, y = _linear_regression_data()
    with pytest.raises(ValueError, match="`num_batches` must be None or >= 1"):
        diagnostics.hessian_spectral_norm(
            _regression_model(),
            [(x, y)],
            keras.losses.mean_squared_error,
            num_batches=0,
        )


def test_empty_dataset_is_rejected():
    with pytest.raises(ValueError, match="`dataset` yielded no batches"):
        diagnostics.hessian_spectral_norm(
            _regression_model(), [], keras.losses.mean_squared_error
        )


def test_infinite_dataset_needs_num_batches():
    x, y = _linear_regression_data()
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    with pytest.raises(ValueError, match="infinite.*Pass `num_batches`"):
        diagnostics.hessian_spectral_norm(
            _regression_model(), dataset, keras.losses.mean_squared_error
        )


def test_dataset_elements_must_be_pairs():
    x, y = _linear_regression_data()
    with pytest.raises(ValueError, match=r"\(x, y\) pairs.*3 parts"):
        diagnostics.hessian_spectral_norm(
            _regression_model(), [(x, y, y)], keras.losses.mean_squared_error
        )


def test_dataset_of_dicts_names_the_keys():
    x, y = _linear_regression_data()
    dataset = tf.data.Dataset.from_tensors({"image": x, "label": y})
    with pytest.raises(ValueError, match=r"type dict: keys \['image', 'label'"):
        diagnostics.hessian_spectral_norm(
            _regression_model(), dataset, keras.losses.mean_squared_error
        )


def test_model_without_trainable_variables_is_rejected():
    model = _regression_model()
    model.trainable = False
    x, y = _linear_regression_data()
    with pytest.raises(ValueError, match="must have trainable variables"):
        diagnostics.hessian_spectral_norm(
            model, [(x, y)], keras.losses.mean_squared_error
        )

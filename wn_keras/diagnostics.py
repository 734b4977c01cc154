"""Diagnostics of a network at initialization.

Two measurements from Arpit, Campos & Bengio, "How to Initialize your
Network? Robust Initialization for WeightNorm & ResNets" (NeurIPS 2019,
arXiv:1906.02341):

- `signal_propagation`: how the norm of the hidden representation grows or
  shrinks layer after layer in the forward pass, and how the norm of the
  loss gradient does in the backward pass (the paper's Figure 1).
- `hessian_spectral_norm`: the largest absolute eigenvalue of the Hessian
  of the training loss with respect to the trainable weights, found by
  power iteration on Hessian-vector products (the paper's Hessian study).

Both run the model in inference mode (`training=False`).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import matplotlib.figure
import numpy as np
import tensorflow as tf

# Layers picked by `signal_propagation` when no names are given: the
# post-ReLU output of hidden layer i of a plain net, and the residual
# addition that ends block b of stage s of a ResNet (the naming used by
# `wn_keras.models`).
DEFAULT_LAYER_PATTERN = r"layer\d+_relu|stage\d+_block\d+_add"

SIGNAL_LOSSES = ("random_projection", "cross_entropy")


@dataclasses.dataclass(frozen=True, eq=False)
class SignalPropagation:
    """Per-layer forward and backward norm ratios over a batch of inputs.

    With `K` chosen layers whose outputs are `h_1, ..., h_K` (graph order)
    and `N` examples:

    Attributes:
      names: The `K` layer names, in graph order.
      forward_ratios: Array `(N, K)`: `||h_k|| / ||x||` for each example.
      backward_ratios: Array `(N, K)`: `||dL/dh_k|| / ||dL/dh_K||` for each
        example, so the last column is 1.
    """

    names: tuple[str, ...]
    forward_ratios: np.ndarray
    backward_ratios: np.ndarray

    @property
    def forward_mean(self) -> np.ndarray:
        """Mean of `forward_ratios` over the examples, shape `(K,)`."""
        return self.forward_ratios.mean(axis=0)

    @property
    def forward_std(self) -> np.ndarray:
        """Standard deviation of `forward_ratios` over the examples."""
        return self.forward_ratios.std(axis=0)

    @property
    def backward_mean(self) -> np.ndarray:
        """Mean of `backward_ratios` over the examples, shape `(K,)`."""
        return self.backward_ratios.mean(axis=0)

    @property
    def backward_std(self) -> np.ndarray:
        """Standard deviation of `backward_ratios` over the examples."""
        return self.backward_ratios.std(axis=0)

    def plot(
        self,
        axes: Sequence[Any] | None = None,
        label: str | None = None,
        **errorbar_kwargs: Any,
    ) -> matplotlib.figure.Figure:
        """Draws the forward and the backward ratios, mean +- std per layer.

        Uses no pyplot state, so it works with any matplotlib backend,
        including Agg on a machine without a display.

        Args:
          axes: Two matplotlib axes, forward panel first. A new figure with
            two panels is made when None.
          label: Legend entry for the two lines; no legend when None.
          **errorbar_kwargs: Passed on to `Axes.errorbar` (color, marker,
            linestyle, ...).

        Returns:
          The figure the axes belong to.

        Raises:
          ValueError: `axes` does not hold exactly two axes.

        Example:
          >>> result = SignalPropagation(
          ...     ("a", "b"), np.ones((3, 2)), np.ones((3, 2)))
          >>> len(result.plot().axes)
          2
        """
        if axes is None:
            figure = matplotlib.figure.Figure(figsize=(10, 4))
            axes = figure.subplots(1, 2)
        elif len(axes) != 2:
            raise ValueError(
                "`axes` must hold two matplotlib axes (forward panel, "
                f"backward panel); received {len(axes)} axes. Pass two "
                "axes, or None to make a new figure."
            )
        layer_index = np.arange(1, len(self.names) + 1)
        panels = (
            (
                self.forward_mean,
                self.forward_std,
                "Forward pass",
                r"$\|h_k\| \,/\, \|x\|$",
            ),
            (
                self.backward_mean,
                self.backward_std,
                "Backward pass",
                r"$\|\partial L/\partial h_k\| \,/\, "
                r"\|\partial L/\partial h_K\|$",
            ),
        )
        for ax, (mean, std, title, ylabel) in zip(axes, panels, strict=True):
            ax.errorbar(
                layer_index,
                mean,
                yerr=std,
                label=label,
                capsize=2,
                **errorbar_kwargs,
            )
            ax.set_title(title)
            ax.set_xlabel("layer k (graph order)")
            ax.set_ylabel(ylabel)
            if label is not None:
                ax.legend()
        return axes[0].figure


@dataclasses.dataclass(frozen=True, eq=False)
class HessianSpectralNorm:
    """Result of power iteration on the loss Hessian.

    Attributes:
      estimate: The largest absolute eigenvalue found, `||H v||` for the
        final unit vector `v`.
      eigenvalue: The Rayleigh quotient `<v, H v>` for that vector: the
        same eigenvalue with its sign.
      history: `||H v_t||` after each iteration `t`, shape
        `(iterations,)`; shorter when the iteration stopped on `H v = 0`.
    """

    estimate: float
    eigenvalue: float
    history: np.ndarray


def _single_input_and_output(model: keras.Model) -> None:
    """Raises ValueError unless `model` has one symbolic input and output."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "`model` must be a functional or Sequential Keras model with a "
            f"defined input; received {type(model).__name__} without one "
            f"({error}). Build it from `keras.Input(...)`."
        ) from error
    if not inputs or len(inputs) != 1 or not outputs or len(outputs) != 1:
        raise ValueError(
            "`model` must have exactly one input and one output; received "
            f"{len(inputs or [])} inputs and {len(outputs or [])} outputs. "
            "Wrap it in a single-input, single-output model."
        )


def _pick_layers(
    model: keras.Model, layer_names: Sequence[str] | None
) -> tuple[str, ...]:
    """Returns the names of the layers to probe, in graph order."""
    existing = [layer.name for layer in model.layers]
    if layer_names is None:
        pattern = re.compile(DEFAULT_LAYER_PATTERN)
        chosen = tuple(name for name in existing if pattern.fullmatch(name))
        if not chosen:
            raise ValueError(
                "`model` has no layer whose name matches "
                f"{DEFAULT_LAYER_PATTERN!r}, so there is nothing to probe by "
                f"default. Its layers are: {existing}. Pass `layer_names` "
                "with the layers whose outputs to measure."
            )
        return chosen
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    if not layer_names:
        raise ValueError(
            "`layer_names` must name one or more layers of `model`; "
            f"received {list(layer_names)}. Pass None to use the default "
            f"pattern, or names from the model's layers: {existing}."
        )
    missing = [name for name in layer_names if name not in existing]
    if missing:
        raise ValueError(
            "`layer_names` must name layers of `model`; received "
            f"{list(layer_names)}, of which {missing} are not in the model. "
            f"Pick names from its layers: {existing}."
        )
    return tuple(layer_names)


def _check_input_shape(model: keras.Model, x: tf.Tensor) -> None:
    """Raises ValueError when `x` cannot be fed to the model's input."""
    expected = tuple(model.inputs[0].shape)
    received = tuple(x.shape)
    fits = len(expected) == len(received) and all(
        want is None or want == got
        for want, got in zip(expected[1:], received[1:], strict=True)
    )
    if not fits or received[0] == 0:
        raise ValueError(
            "`x` must be a non-empty batch shaped like the model input "
            f"{expected} (None: any size); received shape {received}. Pass "
            "`x` with a leading batch axis and the model's input shape."
        )


def _per_example_norm(tensor: tf.Tensor) -> np.ndarray:
    """Euclidean norm of each example over all its non-batch axes."""
    flat = np.reshape(np.asarray(tensor, dtype=np.float64), (len(tensor), -1))
    return np.linalg.norm(flat, axis=1)


def _signal_loss(
    loss: str, output: tf.Tensor, rng: np.random.Generator
) -> tf.Tensor:
    """The scalar loss L, a sum over examples of per-example terms."""
    if loss == "random_projection":
        projection = rng.standard_normal(tuple(output.shape))
        return tf.reduce_sum(output * tf.constant(projection, output.dtype))
    if len(output.shape) != 2:
        raise ValueError(
            "`loss='cross_entropy'` needs a model output of shape (batch, "
            f"classes); received shape {tuple(output.shape)}. Use "
            "`loss='random_projection'` for other outputs."
        )
    labels = rng.integers(0, output.shape[1], size=output.shape[0])
    return tf.reduce_sum(
        tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.constant(labels), logits=output
        )
    )


def signal_propagation(
    model: keras.Model,
    x: np.ndarray | tf.Tensor,
    layer_names: Sequence[str] | None = None,
    loss: str = "random_projection",
    seed: int = 0,
) -> SignalPropagation:
    """Measures forward and backward norm ratios layer by layer.

    For each chosen layer output `h_k` (k = 1..K, graph order) and each
    example `x_n`, computes `||h_k(x_n)|| / ||x_n||` (forward) and
    `||dL/dh_k(x_n)|| / ||dL/dh_K(x_n)||` (backward), norms taken over all
    non-batch axes, as in Figure 1 of arXiv:1906.02341.

    The loss `L` is a sum of one term per example, so row `n` of the batch
    gradient `dL/dh_k` is the gradient of example `n`'s own term:
    - "random_projection" (default): `L = sum_n <r_n, y_n>`, with `y_n` the
      model output and `r = numpy.random.default_rng(seed)
      .standard_normal(y.shape)` fixed, independent across examples;
    - "cross_entropy": `L = sum_n CE(softmax(y_n), t_n)` on random labels
      `t = numpy.random.default_rng(seed).integers(0, classes, size=N)`;
      `y` is taken as logits, so it needs a model without a final softmax.

    Limitations: layers that mix examples in inference mode would break
    the per-example reading of the gradient; none of Keras' standard layers
    do. A layer called more than once is probed at its first call (Keras'
    `layer.output`). A zero denominator (zero input, or zero gradient at
    `h_K`) gives inf or nan for that example.

    Args:
      model: A functional or Sequential Keras model with one input and one
        output.
      x: The model input, a batch of `N >= 1` examples.
      layer_names: Layers whose outputs to probe, in the order given. When
        None, every layer whose name fully matches `layer\\d+_relu` or
        `stage\\d+_block\\d+_add`, in graph order.
      loss: "random_projection" or "cross_entropy", see above.
      seed: Seed of the random projection or of the random labels.

    Returns:
      A `SignalPropagation` holding the per-example ratios, their mean and
      standard deviation per layer, and a `plot` method.

    Raises:
      ValueError: `model` is not single-input single-output with a defined
        input, `layer_names` names layers `model` lacks (or none match by
        default), `x` does not fit the model input, or `loss` is unknown.

    Example:
      >>> inputs = keras.Input((8,))
      >>> h = keras.layers.Dense(
      ...     8, kernel_initializer="ones", name="layer1")(inputs)
      >>> h = keras.layers.ReLU(name="layer1_relu")(h)
      >>> model = keras.Model(inputs, h)
      >>> result = signal_propagation(model, np.ones((4, 8)))
      >>> result.names, float(result.backward_mean[-1])
      (('layer1_relu',), 1.0)
    """
    if loss not in SIGNAL_LOSSES:
        raise ValueError(
            f"`loss` must be one of {SIGNAL_LOSSES}; received {loss!r}. "
            "Pick one of these names."
        )
    _single_input_and_output(model)
    names = _pick_layers(model, layer_names)
    x = tf.convert_to_tensor(x, dtype=model.inputs[0].dtype)
    _check_input_shape(model, x)

    hidden = [model.get_layer(name).output for name in names]
    probe = keras.Model(model.inputs, hidden + [model.outputs[0]])

    rng = np.random.default_rng(seed)
    with tf.GradientTape() as tape:
        *activations, output = probe(x, training=False)
        total_loss = _signal_loss(loss, output, rng)
    gradients = tape.gradient(
        total_loss,
        activations,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )

    input_norm = _per_example_norm(x)[:, None]
    forward = np.stack([_per_example_norm(h) for h in activations], axis=1)
    backward = np.stack([_per_example_norm(g) for g in gradients], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        forward_ratios = forward / input_norm
        backward_ratios = backward / backward[:, -1:]
    return SignalPropagation(names, forward_ratios, backward_ratios)


def _collect_batches(
    dataset: tf.data.Dataset | Iterable[Any], num_batches: int | None
) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """Reads the batches once, so every iteration sees the same data."""
    if num_batches is not None and num_batches < 1:
        raise ValueError(
            f"`num_batches` must be None or >= 1; received {num_batches}. "
            "Pass None to use the whole dataset."
        )
    if isinstance(dataset, tf.data.Dataset):
        if (
            num_batches is None
            and dataset.cardinality() == tf.data.INFINITE_CARDINALITY
        ):
            raise ValueError(
                "`dataset` is infinite and `num_batches` is None, so the "
                "batches would never end. Pass `num_batches`."
            )
    batches = []
    for batch in itertools.islice(dataset, num_batches):
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError(
                "`dataset` must yield (x, y) pairs; received an element of "
                f"type {type(batch).__name__}: {_describe(batch)}. Map it to "
                "(x, y) pairs first, e.g. `dataset.map(lambda x, y, w: "
                "(x, y))`."
            )
        batches.append(
            (tf.convert_to_tensor(batch[0]), tf.convert_to_tensor(batch[1]))
        )
    if not batches:
        raise ValueError(
            "`dataset` yielded no batches. Pass a dataset with at least one "
            "(x, y) batch."
        )
    return batches


def hessian_spectral_norm(
    model: keras.Model,
    dataset: tf.data.Dataset | Iterable[Any],
    loss_fn: Callable[[Any, Any], Any],
    iterations: int = 40,
    num_batches: int | None = None,
    seed: int = 0,
) -> HessianSpectralNorm:
    """Estimates the spectral norm of the loss Hessian by power iteration.

    The Hessian `H` is taken with respect to `model.trainable_variables`,
    all flattened into one vector. Starting from a random unit vector `v`
    (`numpy.random.default_rng(seed)`, Gaussian), each iteration computes
    the Hessian-vector product `H v` by differentiating `<grad L, v>` a
    second time (nested `tf.GradientTape`), averages it over the batches,
    and sets `v <- H v / ||H v||`. `||H v||` converges to the largest
    absolute eigenvalue, as in the Hessian study of arXiv:1906.02341 (40
    iterations, HVP averaged over 10% of the training batches).

    The batches are read once and kept in memory. The average over batches
    is unweighted: with equal batch sizes and a mean-reduced loss it is the
    Hessian of the loss over all their examples. The model runs in
    inference mode, so dropout and batch statistics do not change between
    iterations.

    Limitations: the convergence rate is the ratio of the two largest
    absolute eigenvalues; when they are close, 40 iterations
    underestimate the norm. The `history` shows whether it settled.

    Args:
      model: A Keras model with trainable variables.
      dataset: A `tf.data.Dataset` or an iterable of `(x, y)` batches.
      loss_fn: `loss_fn(y_true, y_pred)`, e.g. a `keras.losses.Loss`; a
        non-scalar result is averaged.
      iterations: Number of Hessian-vector products, >= 1.
      num_batches: Batches of `dataset` to average over; None uses all
        (the dataset must then be finite).
      seed: Seed of the starting vector.

    Returns:
      A `HessianSpectralNorm` with the estimate, its signed eigenvalue and
      the per-iteration history.

    Raises:
      ValueError: `iterations < 1`, `num_batches < 1`, a dataset that is
        infinite with `num_batches=None`, is empty or does not yield (x, y)
        pairs, or a model without trainable variables.

    Example:
      >>> model = keras.Sequential(
      ...     [keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
      >>> x = np.array([[3.0, 0.0], [0.0, 1.0]], "float32")
      >>> result = hessian_spectral_norm(
      ...     model, [(x, np.zeros((2, 1), "float32"))],
      ...     keras.losses.MeanSquaredError(), iterations=20)
      >>> round(result.estimate, 3)  # 2 X^T X / n has eigenvalues 9, 1
      9.0
    """
    if iterations < 1:
        raise ValueError(
            f"`iterations` must be >= 1; received {iterations}. The paper "
            "uses 40."
        )
    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError(
            "`model` must have trainable variables; received a model with "
            "none. Build the model (call it on an input) before measuring."
        )
    batches = _collect_batches(dataset, num_batches)

    @tf.function(reduce_retracing=True)
    def hessian_vector_product(x, y, vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = tf.reduce_mean(loss_fn(y, model(x, training=False)))
            gradients = inner.gradient(
                loss,
                variables,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            projection = tf.add_n(
                [
                    tf.reduce_sum(g * tf.cast(v, g.dtype))
                    for g, v in zip(gradients, vector, strict=True)
                ]
            )
        return outer.gradient(
            projection,
            variables,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )

    rng = np.random.default_rng(seed)
    vector = [rng.standard_normal(tuple(v.shape)) for v in variables]
    vector = _normalized(vector)
    history = []
    eigenvalue = 0.0
    for _ in range(iterations):
        product = [np.zeros(tuple(v.shape)) for v in variables]
        tensors = [
            tf.constant(v, var.dtype)
            for v, var in zip(vector, variables, strict=True)
        ]
        for x, y in batches:
            for total, part in zip(
                product,
                hessian_vector_product(x, y, tensors),
                strict=True,
            ):
                total += np.asarray(part, dtype=np.float64)
        product = [p / len(batches) for p in product]
        eigenvalue = sum(
            float(np.sum(v * p)) for v, p in zip(vector, product, strict=True)
        )
        norm = _global_norm(product)
        history.append(norm)
        if norm == 0.0:
            break
        vector = [p / norm for p in product]
    return HessianSpectralNorm(
        estimate=history[-1], eigenvalue=eigenvalue, history=np.array(history)
    )


def _global_norm(arrays: list[np.ndarray]) -> float:
    """Euclidean norm of all the arrays taken as one flat vector."""
    return float(np.sqrt(sum(np.sum(a * a) for a in arrays)))


def _normalized(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays scaled together to a global norm of one."""
    norm = _global_norm(arrays)
    return [a / norm for a in arrays]


def _describe(batch: Any) -> str:
    """A short description of a dataset element for error messages."""
    if isinstance(batch, tuple | list):
        return f"{len(batch)} parts"
    if isinstance(batch, dict):
        return f"keys {sorted(batch)}"
    return f"shape {getattr(batch, 'shape', None)}"

"""Data-dependent initialization of weight-normalized models.

Salimans & Kingma (2016, arXiv:1602.07868) initialize a weight-normalized
network from one batch of data, layer by layer in forward order: with
``g = 1`` and ``b = 0`` each unit's pre-activation ``t = v . x / ||v||`` is
measured, then ``g = 1 / sigma`` and ``b = -mu / sigma`` are set, with
``mu`` and ``sigma`` the per-unit mean and standard deviation of ``t`` over
the batch (and over spatial positions for convolutions), so that the
layer's pre-activations have zero mean and unit variance on that batch.
The re-normalized outputs are what the next layer sees.

This is the "data-dependent" baseline of Arpit, Campos & Bengio
(arXiv:1906.02341), which fails to train very deep plain networks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from wn_keras.weight_norm import WeightNorm

# Added to the variance before its square root, so a unit whose
# pre-activation is constant on the batch gets a large but finite g.
DEFAULT_EPSILON = 1e-6


def _is_graph_model(model: Any) -> bool:
    """True for functional models (Sequential ones are handled apart)."""
    return isinstance(model, keras.Model) and hasattr(
        model, "_run_through_graph"
    )


def _contains_weight_norm(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, WeightNorm):
        return True
    return any(isinstance(sub, WeightNorm) for sub in layer._flatten_layers())


class _Sweep:
    """Runs a model once, initializing each WeightNorm layer on the way."""

    def __init__(self, epsilon: float):
        self.epsilon = epsilon
        self.stats: dict[str, dict[str, np.ndarray]] = {}

    def run(self, model: keras.Model, inputs: Any) -> Any:
        if isinstance(model, keras.Sequential):
            outputs = inputs
            for layer in model.layers:
                outputs = self.operation(layer)(outputs)
            return outputs
        if _is_graph_model(model):
            # One pass over the graph in topological order; each operation
            # is replaced by `self.operation(op)`, so every layer runs
            # exactly once and sees the already-initialized upstream.
            return model._run_through_graph(
                model._standardize_inputs(inputs),
                operation_fn=self.operation,
            )
        raise ValueError(
            "data_dependent_init: nested model "
            f"{model.name!r} is a subclassed model "
            f"({type(model).__name__}); only functional and Sequential "
            "models can be initialized layer by layer."
        )

    def operation(self, op: Any) -> Callable[..., Any]:
        if isinstance(op, WeightNorm):
            return lambda *args, **kwargs: self.initialize(op, args[0])
        if isinstance(op, keras.Model) and _contains_weight_norm(op):
            return lambda *args, **kwargs: self.run(op, args[0])
        return lambda *args, **kwargs: op(
            *args, **_inference_kwargs(op, kwargs)
        )

    def initialize(self, layer: WeightNorm, inputs: Any) -> Any:
        # Unit outputs t = v . x / ||v||: the layer with g = 1, b = 0 and no
        # activation, computed with the layer's own code path.
        inputs = ops.cast(inputs, layer.compute_dtype)
        unit_output = ops.cast(
            layer._scaled_linear(inputs, ops.divide(1.0, layer.kernel_norm())),
            "float32",
        )
        inner = layer.layer
        saved_magnitude = ops.convert_to_numpy(layer.magnitude)
        saved_bias = (
            None if inner.bias is None else ops.convert_to_numpy(inner.bias)
        )
        axes = [a for a in range(len(unit_output.shape))]
        channel_axis = axes[layer._channel_axis()]
        reduce_axes = tuple(a for a in axes if a != channel_axis)
        mean = ops.mean(unit_output, axis=reduce_axes)
        variance = ops.var(unit_output, axis=reduce_axes)
        std = ops.sqrt(ops.add(variance, self.epsilon))

        bias_before = (
            saved_bias
            if saved_bias is not None
            else np.zeros_like(saved_magnitude)
        )
        self.stats[layer.name] = {
            # The pre-activation with the previous g and b is an affine
            # function of the unit output, so it needs no second pass.
            "mean_before": ops.convert_to_numpy(mean) * saved_magnitude
            + bias_before,
            "std_before": ops.convert_to_numpy(ops.sqrt(variance))
            * np.abs(saved_magnitude),
        }

        layer.magnitude.assign(ops.divide(1.0, std))
        shifted = ops.divide(ops.negative(mean), std)
        if inner.bias is not None:
            inner.bias.assign(shifted)
            normalized = ops.divide(
                ops.subtract(
                    unit_output, layer._broadcast_to_outputs(mean, unit_output)
                ),
                layer._broadcast_to_outputs(std, unit_output),
            )
        else:
            normalized = ops.divide(
                unit_output, layer._broadcast_to_outputs(std, unit_output)
            )
        self.stats[layer.name]["mean_after"] = ops.convert_to_numpy(
            ops.mean(normalized, axis=reduce_axes)
        )
        self.stats[layer.name]["std_after"] = ops.convert_to_numpy(
            ops.std(normalized, axis=reduce_axes)
        )
        outputs = normalized
        if inner.activation is not None:
            outputs = inner.activation(outputs)
        return ops.cast(outputs, layer.compute_dtype)


def _inference_kwargs(op: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call arguments that run a layer in inference mode where it can."""
    kwargs = dict(kwargs)
    if getattr(op, "_call_has_training_arg", False):
        kwargs["training"] = False
    return kwargs


def data_dependent_init(
    model: keras.Model,
    x: Any,
    epsilon: float = DEFAULT_EPSILON,
) -> dict[str, dict[str, np.ndarray]]:
    """Initializes every `WeightNorm` layer of ``model`` from the batch ``x``.

    Layers are visited in topological order in a single pass over the
    graph, so the whole call costs about one forward pass. For each
    `WeightNorm` layer, with ``t`` the per-unit pre-activation computed with
    ``g = 1`` and ``b = 0`` from the (already re-normalized) outputs of the
    layers before it, and ``mu``, ``sigma`` its mean and standard deviation
    over every axis but the channel axis:

        g = 1 / sqrt(sigma^2 + epsilon),  b = -mu * g

    after which the layer's pre-activations on ``x`` have mean 0 and
    standard deviation 1. A wrapped layer without a bias only gets ``g``
    (its pre-activations then have unit standard deviation but keep their
    mean). Other layers run in inference mode (batch normalization uses its
    moving statistics; dropout is off).

    The values are assigned in cross-replica context, so inside a
    `tf.distribute` strategy scope every replica ends up with the same
    ``g`` and bias. Call it outside any replica function (for example
    before `model.fit`).

    Args:
        model: A built functional or Sequential model containing at least
            one `WeightNorm` layer (nested functional or Sequential models
            are handled).
        x: One batch of inputs (a numpy array or tensor, or a list/dict of
            them for multi-input models), large enough for meaningful
            statistics.
        epsilon: Added to the variance before the square root.

    Returns:
        A dict from each `WeightNorm` layer's name to per-unit numpy arrays
        ``mean_before``, ``std_before`` (pre-activation statistics with the
        layer's previous ``g`` and bias, on the re-normalized inputs from
        upstream), ``mean_after`` and ``std_after``.

    Raises:
        ValueError: If the model is not built, has no `WeightNorm` layer, is
            subclassed, or ``x`` does not fit its inputs.

    Example:

    >>> import numpy as np
    >>> inputs = keras.Input((5,))
    >>> outputs = WeightNorm(keras.layers.Dense(4))(inputs)
    >>> model = keras.Model(inputs, outputs)
    >>> x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    >>> stats = data_dependent_init(model, x)
    >>> y = np.asarray(model(x))
    >>> bool(np.allclose(y.mean(0), 0, atol=1e-4))
    True
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "data_dependent_init: `model` must be a keras.Model; got "
            f"{type(model).__name__}."
        )
    if not model.built:
        raise ValueError(
            "data_dependent_init: `model` is not built. Build it (call it "
            "on a batch, or give the Sequential model an Input) first."
        )
    if not _contains_weight_norm(model):
        raise ValueError(
            "data_dependent_init: `model` "
            f"{model.name!r} contains no WeightNorm layer, so there is "
            "nothing to initialize. Wrap its Dense/Conv layers in "
            "wn_keras.WeightNorm."
        )
    if not (epsilon >= 0):
        raise ValueError(
            f"data_dependent_init: `epsilon` must be >= 0; got {epsilon!r}."
        )
    if not isinstance(model, keras.Sequential) and not _is_graph_model(model):
        raise ValueError(
            "data_dependent_init: `model` must be a functional or "
            f"Sequential model; got the subclassed {type(model).__name__}. "
            "Initialize its WeightNorm layers by building it functionally."
        )
    _check_inputs(model, x)
    sweep = _Sweep(epsilon)
    sweep.run(model, x)
    return sweep.stats


def _check_inputs(model: keras.Model, x: Any) -> None:
    """Raises a clear error when ``x`` cannot be fed to ``model``."""
    expected = [tuple(t.shape) for t in keras.tree.flatten(model.inputs)]
    given = [tuple(np.shape(t)) for t in keras.tree.flatten(x)]
    problem = len(expected) != len(given) or any(
        len(e) != len(g)
        or any(a is not None and a != b for a, b in zip(e[1:], g[1:]))
        for e, g in zip(expected, given)
    )
    if problem:
        raise ValueError(
            "data_dependent_init: `x` does not fit the model's inputs: "
            f"the model expects {expected} (None = any size), got "
            f"{given}. Pass one batch shaped like the training inputs."
        )
    if any(g[0] < 2 for g in given if g):
        raise ValueError(
            "data_dependent_init: `x` must hold at least 2 examples to "
            f"measure a standard deviation; got shapes {given}."
        )

"""Initializers for the robust weight-norm initialization of Arpit et al.

Under weight normalization every output unit ``i`` of a layer has its
weight vector written as ``w_i = g_i * v_i / ||v_i||``, so the kernel
drawn for ``v`` matters only through the direction of each unit's vector.
Arpit, Campos & Bengio (arXiv:1906.02341) propose to draw those directions
orthogonal (or Gaussian) and to give every unit the same length

    ``||w_i|| = sqrt(gain * fan_in / fan_out)``    (forward pass), or
    ``||w_i|| = sqrt(gain)``                        (backward pass),

with ``gain = 2`` for a layer followed by a ReLU. The forward rule keeps
the norm of the hidden activations constant from layer to layer; the
paper found it better than the backward rule, so it is the default.
Residual networks use other gains per layer (``1 / B`` for the last layer
of a residual branch in a stage of ``B`` blocks, ``1`` for projection
shortcuts); the caller passes them as ``gain``.

The initializers here return the kernel ``w`` itself, each unit's slice
already scaled to its target norm. On a layer without weight
normalization that kernel is used as it is; under weight normalization,
initializing ``g`` as ``||v||`` then gives ``g_i`` exactly the paper's
value.

Fans are those Keras computes for the kernel seen with its unit axis last:
for a kernel ``(k_1, ..., k_r, in_channels, units)``, ``fan_in`` is
``k_1 * ... * k_r * in_channels`` and ``fan_out`` is
``k_1 * ... * k_r * units``, so ``fan_in / fan_out`` equals
``in_channels / units``.

Limitations: a ``DepthwiseConv2D`` kernel ``(kh, kw, in_channels,
multiplier)`` has one unit per ``(in_channels, multiplier)`` pair; these
initializers treat its last axis as the units and so do not model that
layout.
"""

import math
import random

import keras

# The paper's gain for a layer followed by a ReLU.
RELU_GAIN = 2.0
# Values accepted for `mode` and `unit_axis`.
FORWARD_MODE = "forward"
BACKWARD_MODE = "backward"
MODES = (FORWARD_MODE, BACKWARD_MODE)
UNIT_AXES = (-1, -2)
# Kernels have at least an input and a unit axis.
MIN_KERNEL_RANK = 2
# Fresh seeds for unseeded instances are drawn from [0, MAX_SEED].
MAX_SEED = 2**31 - 1
# The dtype in which directions are drawn and scaled.
COMPUTE_DTYPE = "float32"


def _unit_last_shape(shape: tuple, unit_axis: int) -> tuple:
    """Returns the kernel shape with the unit axis moved to the end."""
    if unit_axis == -1:
        return shape
    return shape[:-2] + (shape[-1], shape[-2])


def _fans(unit_last_shape: tuple) -> tuple[int, int]:
    """Returns `(fan_in, fan_out)` of a kernel whose unit axis is last.

    The formula equals Keras' own fan computation for kernels of rank 2 or
    more: the receptive field times the input or the output channels.
    """
    receptive_field = math.prod(unit_last_shape[:-2])
    fan_in = receptive_field * unit_last_shape[-2]
    fan_out = receptive_field * unit_last_shape[-1]
    return fan_in, fan_out


class _UnitNormInitializer(keras.initializers.Initializer):
    """Shared logic: draws unit directions and scales them to one length.

    Subclasses implement `_draw_directions`, which returns a float32 matrix
    of shape `(fan_in, units)` whose columns give the directions; this
    class checks the arguments, flattens and restores the kernel, moves
    the unit axis, and rescales each column to the target norm.
    """

    def __init__(
        self,
        gain: float = RELU_GAIN,
        mode: str = FORWARD_MODE,
        unit_axis: int = -1,
        seed: int | None = None,
    ):
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(
                "`gain` must be a positive finite number, the gamma of "
                "g = sqrt(gamma * fan_in / fan_out). "
                f"Received: gain={gain!r}. Pass e.g. gain=2.0 for a layer "
                "followed by a ReLU."
            )
        if mode not in MODES:
            raise ValueError(
                f"`mode` must be one of {MODES}. Received: mode={mode!r}. "
                "Use 'forward' for g = sqrt(gain * fan_in / fan_out) or "
                "'backward' for g = sqrt(gain)."
            )
        if unit_axis not in UNIT_AXES:
            raise ValueError(
                f"`unit_axis` must be one of {UNIT_AXES}. Received: "
                f"unit_axis={unit_axis!r}. Use -1 for Dense and "
                "convolution kernels, -2 for transposed convolutions."
            )
        self.gain = gain
        self.mode = mode
        self.unit_axis = unit_axis
        self.seed = seed

    def target_norm(self, shape: tuple) -> float:
        """Returns the norm every unit's slice of the kernel gets.

        Args:
            shape: The kernel shape, at least 2-D.

        Returns:
            `sqrt(gain * fan_in / fan_out)` in forward mode, `sqrt(gain)`
            in backward mode.
        """
        if self.mode == BACKWARD_MODE:
            return math.sqrt(self.gain)
        fan_in, fan_out = _fans(_unit_last_shape(tuple(shape), self.unit_axis))
        return math.sqrt(self.gain * fan_in / fan_out)

    def __call__(self, shape, dtype=None):
        """Returns a kernel whose units all have the target norm.

        Args:
            shape: The kernel shape, at least 2-D, every dimension positive.
            dtype: A floating dtype; defaults to `keras.config.floatx()`.
                Values are computed in float32 and cast at the end.

        Returns:
            A tensor of shape `shape` and dtype `dtype`.

        Raises:
            ValueError: If `shape` has fewer than two dimensions or a
                dimension below one, or `dtype` is not a floating dtype.
        """
        shape = tuple(shape)
        if len(shape) < MIN_KERNEL_RANK or min(shape) < 1:
            raise ValueError(
                "`shape` must have at least 2 dimensions, all positive: "
                "these initializers are for kernels (Dense, convolution). "
                f"Received: shape={shape}. Use an ordinary initializer "
                "such as 'zeros' for biases and other 1-D weights."
            )
        dtype = keras.backend.standardize_dtype(dtype)
        if not keras.backend.is_float_dtype(dtype):
            raise ValueError(
                "`dtype` must be a floating dtype (e.g. 'float32'). "
                f"Received: dtype={dtype!r}."
            )
        unit_last_shape = _unit_last_shape(shape, self.unit_axis)
        fan_in = math.prod(unit_last_shape[:-1])
        units = unit_last_shape[-1]

        seed = self.seed
        if seed is None:
            # A fresh seed per call, so that layers sharing one unseeded
            # instance get different kernels. Python's generator is the one
            # `keras.utils.set_random_seed` seeds, which keeps whole runs
            # reproducible.
            seed = random.randint(0, MAX_SEED)
        directions = self._draw_directions(fan_in, units, seed)
        column_norms = keras.ops.norm(directions, axis=0, keepdims=True)
        kernel = directions * (self.target_norm(shape) / column_norms)

        kernel = keras.ops.reshape(kernel, unit_last_shape)
        if self.unit_axis == -2:
            kernel = keras.ops.swapaxes(kernel, -1, -2)
        return keras.ops.cast(kernel, dtype)

    def _draw_directions(self, fan_in: int, units: int, seed: int):
        """Returns a float32 `(fan_in, units)` matrix of unit directions."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_draw_directions`."
        )

    def get_config(self) -> dict:
        """Returns the constructor arguments as a JSON-serializable dict."""
        return {
            "gain": self.gain,
            "mode": self.mode,
            "unit_axis": self.unit_axis,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="wn_keras")
class ProposedOrthogonal(_UnitNormInitializer):
    """Orthogonal unit directions, each scaled to the proposed norm.

    The kernel is flattened to a matrix `(fan_in, units)`: one column per
    unit (the size of `unit_axis`), one row per entry of a unit's slice.
    The columns are drawn orthonormal, uniformly over all such matrices
    (QR of a Gaussian matrix, each column multiplied by the sign of the
    matching diagonal entry of R), and each is then scaled to
    `sqrt(gain * fan_in / fan_out)` (mode "forward") or `sqrt(gain)`
    (mode "backward"), following arXiv:1906.02341.

    When a layer has more units than `fan_in`, its columns cannot all be
    orthogonal. The matrix is then drawn with orthonormal rows instead
    (QR of the transposed Gaussian matrix) before each column is scaled to
    the target norm, which keeps the directions as close to orthogonal as
    the shape allows; the rows are then only nearly orthogonal, because
    the columns are rescaled by different factors.

    A seeded instance returns the same kernel for the same shape on every
    call; an unseeded one draws a fresh kernel on each call.

    Args:
        gain: The paper's gamma, positive and finite: 2 for a layer
            followed by a ReLU, other values inside residual blocks.
        mode: "forward" for `sqrt(gain * fan_in / fan_out)`, "backward"
            for `sqrt(gain)`.
        unit_axis: The kernel axis that indexes units: -1 for Dense and
            convolution kernels, -2 for transposed convolutions, whose
            kernel is `(..., filters, in_channels)`.
        seed: An integer for reproducible draws, or None.

    Raises:
        ValueError: If `gain` is not positive and finite, `mode` is not
            "forward" or "backward", or `unit_axis` is not -1 or -2.

    Example:

    >>> import numpy as np
    >>> kernel = np.asarray(ProposedOrthogonal(gain=2.0, seed=1)((64, 32)))
    >>> norms = np.linalg.norm(kernel, axis=0)
    >>> bool(np.allclose(norms, np.sqrt(2.0 * 64 / 32)))
    True
    >>> directions = kernel / norms
    >>> bool(np.allclose(directions.T @ directions, np.eye(32), atol=1e-5))
    True
    """

    def _draw_directions(self, fan_in: int, units: int, seed: int):
        """Returns a matrix with orthonormal columns (or rows, if wide)."""
        wide = fan_in < units
        rows, cols = (units, fan_in) if wide else (fan_in, units)
        gaussian = keras.random.normal(
            (rows, cols), dtype=COMPUTE_DTYPE, seed=seed
        )
        q, r = keras.ops.qr(gaussian, mode="reduced")
        # Without this correction the QR convention biases the signs and
        # the matrix would not be uniformly distributed.
        signs = keras.ops.where(keras.ops.diagonal(r) < 0, -1.0, 1.0)
        q = q * signs
        return keras.ops.transpose(q) if wide else q


@keras.saving.register_keras_serializable(package="wn_keras")
class ProposedHe(_UnitNormInitializer):
    """Gaussian unit directions, each scaled to the proposed norm.

    Every entry of the kernel is drawn i.i.d. from a standard normal, so
    each unit's direction is uniform on the sphere; each unit's slice is
    then scaled to `sqrt(gain * fan_in / fan_out)` (mode "forward") or
    `sqrt(gain)` (mode "backward"). This is the paper's "he_proposed"
    (arXiv:1906.02341): under weight normalization only the direction of
    the He draw `N(0, 1/fan_in)` matters, so its variance is left out.

    A seeded instance returns the same kernel for the same shape on every
    call; an unseeded one draws a fresh kernel on each call.

    Args:
        gain: Positive finite gamma of the target norm (2 before a ReLU).
        mode: "forward" or "backward", as for `ProposedOrthogonal`.
        unit_axis: -1, or -2 for transposed convolution kernels.
        seed: An integer for reproducible draws, or None.

    Raises:
        ValueError: On the same bad arguments as `ProposedOrthogonal`.

    Example:

    >>> import numpy as np
    >>> init = ProposedHe(gain=2.0, mode="backward", seed=1)
    >>> kernel = np.asarray(init((3, 3, 8, 4)))
    >>> norms = np.linalg.norm(kernel.reshape(-1, 4), axis=0)
    >>> bool(np.allclose(norms, np.sqrt(2.0)))
    True
    """

    def _draw_directions(self, fan_in: int, units: int, seed: int):
        """Returns a matrix of i.i.d. standard normal entries."""
        return keras.random.normal(
            (fan_in, units), dtype=COMPUTE_DTYPE, seed=seed
        )

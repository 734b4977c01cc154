"""Weight normalization as a Keras 3 wrapper layer.

Weight normalization (Salimans & Kingma, 2016, arXiv:1602.07868) writes the
weight vector of each output unit ``i`` of a linear layer as

    w_i = g_i * v_i / ||v_i||

with a direction ``v_i`` and a scalar length ``g_i`` that are trained
instead of ``w_i``. `WeightNorm` applies this to a Keras layer without
changing the layer's own code: the wrapped layer's kernel variable is used
as the direction ``v`` and the wrapper adds one length per output unit.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# Added to the squared norm before the reciprocal square root, so that an
# all-zero direction gives a finite (zero) kernel instead of NaN. It is far
# below the squared norm of any initialized direction.
_NORM_EPSILON = 1e-12

_DENSE = (keras.layers.Dense,)
_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_CONV_TRANSPOSE = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_DEPTHWISE = (keras.layers.DepthwiseConv2D,)
SUPPORTED_LAYERS = _DENSE + _CONV + _CONV_TRANSPOSE + _DEPTHWISE


def _supported_names() -> str:
    return ", ".join(cls.__name__ for cls in SUPPORTED_LAYERS)


def _tracing_for_xla() -> bool:
    """True while TensorFlow traces a function that XLA will compile.

    TensorFlow marks the graph of a `tf.function(jit_compile=True)` (which
    is what `model.fit` runs after `compile(jit_compile=True)`) with an XLA
    context while it traces it. The check uses TensorFlow's internal
    module for that mark; if it ever moves, the answer is False and only
    speed changes, never results.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    try:
        import tensorflow as tf
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return False
    try:
        graph = tf.compat.v1.get_default_graph()
        return bool(control_flow_util.GraphOrParentsInXlaContext(graph))
    except Exception:  # a speed hint only: never fail because of it
        return False


def _sum_rows_by_halving(matrix):
    """Sum over the first axis of a matrix, in a form XLA runs fast.

    XLA on CPU compiles a sum over the leading axis of a matrix into a slow
    strided loop (for the norms of an MLP's 1024 x 1024 kernels it cost 11%
    of a training step against 4% without XLA; see benchmarks/README.md).
    Adding the lower half of the rows to the upper half, again and again
    while the row count is even, is elementwise work that XLA fuses and
    runs at memory speed; a short sum over the rows left finishes it. A
    row count unknown at tracing time falls back to the plain sum.
    """
    import tensorflow as tf

    rows = matrix.shape[0]
    if rows is None:
        return tf.reduce_sum(matrix, axis=0)
    while rows > 1 and rows % 2 == 0:
        rows //= 2
        matrix = matrix[:rows] + matrix[rows:]
    return tf.reduce_sum(matrix, axis=0)


def _column_squares_by_halving(matrix):
    """Column sums of ``matrix ** 2``, for XLA; twice differentiable.

    The sum runs by `_sum_rows_by_halving`. The gradient is written by hand
    as ``2 * matrix * upstream``: the one elementwise product that XLA fuses
    into the optimizer's update, where differentiating the halving would
    build a chain of pads. It is made of ordinary differentiable ops, so
    second derivatives (the Hessian diagnostics) still work.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def column_squares(matrix):
        def gradient(upstream):
            return 2.0 * matrix * upstream[None, :]

        return _sum_rows_by_halving(tf.square(matrix)), gradient

    return column_squares(matrix)


def _scale_last_axis_for_xla(values, scale):
    """``values * scale`` with one scale per last-axis entry, for XLA.

    The same product as `ops.multiply`, with its gradient written by hand:
    ``upstream * scale`` for ``values`` and, for ``scale``, the sum over
    all other axes of ``upstream * values``, taken by `_sum_rows_by_halving`
    and accumulated in float32 at least (float64 stays float64). Left to
    automatic differentiation, XLA computes that sum over the batch with a
    slow windowed reduction, which made the weight-normalized MLP step
    about 9% slower than it is with this form (benchmarks/README.md). The
    gradient is built from ordinary differentiable ops, so second
    derivatives still work.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def scale_last_axis(values, scale):
        def gradient(upstream):
            wide = tf.float64 if values.dtype == tf.float64 else tf.float32
            products = tf.cast(upstream, wide) * tf.cast(values, wide)
            products = tf.reshape(products, (-1, products.shape[-1]))
            d_scale = _sum_rows_by_halving(products)
            return upstream * scale, tf.cast(d_scale, scale.dtype)

        return values * scale, gradient

    return scale_last_axis(values, scale)


@keras.saving.register_keras_serializable(package="wn_keras")
class WeightNorm(keras.layers.Wrapper):
    """Weight-normalizes the kernel of a Dense or convolution layer.

    Each output unit ``i`` of the wrapped layer computes with the kernel
    slice ``w_i = g_i * v_i / ||v_i||`` (Salimans & Kingma, 2016,
    arXiv:1602.07868). The direction ``v`` is the wrapped layer's own
    kernel variable; the length ``g`` is a new trainable variable with one
    entry per output unit, created at build as ``g_i = ||v_i||`` so that
    the wrapped layer starts out computing exactly what the unwrapped one
    would. The kernel initializer of the wrapped layer therefore decides
    both the direction and the initial length: with
    `wn_keras.ProposedOrthogonal` it gives the robust initialization of
    Arpit, Campos & Bengio (arXiv:1906.02341), with an ordinary initializer
    the "default" weight-normalization initialization.

    The wrapped layer's bias and activation are applied unchanged. Both
    ``g`` and ``v`` receive gradients; nothing is assigned during `call`.
    The norms are always computed in float32 (the variable dtype), also
    under a mixed-precision policy.

    Supported layers and their output-unit axis in the kernel:

    - `Dense` ``(input_dim, units)``: axis -1;
    - `Conv1D`, `Conv2D`, `Conv3D` ``(*kernel_size, in, filters)``: -1;
    - `Conv1DTranspose`, `Conv2DTranspose`, `Conv3DTranspose`
      ``(*kernel_size, filters, in)``: -2;
    - `DepthwiseConv2D` ``(*kernel_size, in, multiplier)``: one unit per
      (input channel, multiplier) pair, i.e. the last two axes, ordered
      like the layer's output channels.

    For `Dense` the per-unit factor ``g / ||v||`` is applied to the layer's
    outputs rather than to the kernel, which is the same product but costs
    ``batch x units`` multiplications instead of ``input_dim x units``; for
    convolutions the kernel is scaled, since their outputs are larger than
    their kernels. While TensorFlow traces for XLA (``jit_compile=True``)
    the norm and the Dense output scaling take forms that XLA compiles to
    faster code, with hand-written gradients; the results are the same.

    Args:
        layer: The layer to wrap; one of the classes listed above. It may
            be built or not; it is built by the wrapper if needed.
        **kwargs: Keyword arguments of `keras.layers.Layer` (``name``,
            ``dtype``, ...). The dtype policy defaults to the wrapped
            layer's.

    Raises:
        TypeError: If ``layer`` is not a Keras layer.
        ValueError: If ``layer`` is a layer class that is not supported.

    Example:

    >>> import numpy as np
    >>> dense = keras.layers.Dense(3)
    >>> wrapped = WeightNorm(dense)
    >>> x = np.ones((2, 4), "float32")
    >>> y = wrapped(x)
    >>> bool(np.allclose(y, x @ np.asarray(dense.kernel), atol=1e-5))
    True

    Limitations: the wrapped layer's LoRA and quantization modes are not
    supported, and ``kernel_regularizer``/``kernel_constraint`` of the
    wrapped layer act on the direction ``v``, not on the effective kernel.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs: Any):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "WeightNorm: `layer` must be a keras.layers.Layer instance, "
                f"got {type(layer).__name__}: {layer!r}."
            )
        if not isinstance(layer, SUPPORTED_LAYERS):
            raise ValueError(
                "WeightNorm: `layer` must be one of "
                f"{_supported_names()}; got {type(layer).__name__} "
                f"(name={layer.name!r}). Wrap the linear layer itself, "
                "not a container or normalization layer."
            )
        kwargs.setdefault("dtype", layer.dtype_policy)
        # The norms are computed from the float32 variables themselves and
        # cast by hand, so the wrapper's variables must not be auto-cast.
        kwargs["autocast"] = False
        super().__init__(layer, **kwargs)
        self.magnitude = None

    # Structure of the kernel -------------------------------------------

    def _unit_axes(self) -> tuple[int, ...]:
        """Kernel axes that index output units (negative indices)."""
        if isinstance(self.layer, _CONV_TRANSPOSE):
            return (-2,)
        if isinstance(self.layer, _DEPTHWISE):
            return (-2, -1)
        return (-1,)

    def _norm_axes(self) -> tuple[int, ...]:
        """Kernel axes that the norm of one unit's vector runs over."""
        rank = len(self.layer.kernel.shape)
        units = {rank + axis for axis in self._unit_axes()}
        return tuple(axis for axis in range(rank) if axis not in units)

    def _channel_axis(self) -> int:
        """Axis of the layer's output that holds the units."""
        data_format = getattr(self.layer, "data_format", "channels_last")
        return 1 if data_format == "channels_first" else -1

    # Keras layer API ----------------------------------------------------

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        if getattr(self.layer, "lora_enabled", False):
            raise ValueError(
                "WeightNorm: the wrapped layer "
                f"{self.layer.name!r} has LoRA enabled, which WeightNorm "
                "does not support. Enable LoRA on an unwrapped layer."
            )
        norm = self._direction_norm()
        self.magnitude = self.add_weight(
            name="magnitude",
            shape=tuple(norm.shape),
            initializer="ones",
            trainable=True,
            dtype=self.layer.kernel.dtype,
        )
        self.magnitude.assign(norm)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # The base class pops "layer" from the dict it is given; work on a
        # copy so that the caller's config stays intact.
        return super().from_config(dict(config), custom_objects)

    def call(self, inputs):
        # With autocast off (see __init__) Keras leaves the inputs as they
        # come; cast floating inputs to the compute dtype as it would.
        if keras.backend.is_float_dtype(inputs.dtype):
            inputs = ops.cast(inputs, self.compute_dtype)
        scale = ops.divide(self.magnitude, self._direction_norm())
        outputs = self._scaled_linear(inputs, scale)
        layer = self.layer
        if layer.bias is not None:
            bias = ops.cast(layer.bias, self.compute_dtype)
            outputs = ops.add(
                outputs, self._broadcast_to_outputs(bias, outputs)
            )
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    # Public helpers -----------------------------------------------------

    @property
    def direction(self) -> keras.Variable:
        """The direction ``v``: the wrapped layer's kernel variable."""
        return self.layer.kernel

    def kernel_norm(self):
        """``||v_i||`` for each output unit, in the variable dtype."""
        return self._direction_norm()

    def effective_kernel(self):
        """The kernel ``g * v / ||v||`` that the layer computes with."""
        scale = ops.divide(self.magnitude, self._direction_norm())
        return ops.multiply(
            ops.convert_to_tensor(self.layer.kernel),
            self._broadcast_to_kernel(scale),
        )

    # Internals ----------------------------------------------------------

    def _direction_norm(self):
        direction = ops.convert_to_tensor(self.layer.kernel)
        norm_axes = self._norm_axes()
        if norm_axes == tuple(range(len(norm_axes))):
            # The units are the trailing axes (Dense, Conv, Depthwise): the
            # squares form a (fan_in, units) matrix whose column sums are
            # wanted. TensorFlow's executor runs a sum over the leading
            # axis several times slower than a row of ones times the
            # matrix, which it hands to its matrix-vector kernel. XLA
            # compiles both slowly; there the halving sum of
            # `_column_squares_by_halving` is about twice as fast
            # (benchmarks/README.md has the measurements).
            matrix = ops.reshape(direction, (-1, self._num_units()))
            if _tracing_for_xla():
                squared = _column_squares_by_halving(matrix)
            else:
                squares = ops.square(matrix)
                ones = ops.ones((1, squares.shape[0]), dtype=squares.dtype)
                squared = ops.matmul(ones, squares)
        else:
            squared = ops.sum(ops.square(direction), axis=norm_axes)
        squared = ops.reshape(squared, (-1,))
        return ops.sqrt(ops.add(squared, _NORM_EPSILON))

    def _num_units(self) -> int:
        """Number of output units: the product of the unit-axis sizes."""
        kernel_shape = tuple(self.layer.kernel.shape)
        units = 1
        for axis in self._unit_axes():
            units *= kernel_shape[axis]
        return units

    def _broadcast_to_kernel(self, per_unit):
        """Reshapes a per-unit vector so that it multiplies the kernel."""
        kernel_shape = tuple(self.layer.kernel.shape)
        rank = len(kernel_shape)
        unit_axes = {rank + axis for axis in self._unit_axes()}
        shape = [
            kernel_shape[axis] if axis in unit_axes else 1
            for axis in range(rank)
        ]
        return ops.reshape(per_unit, shape)

    def _broadcast_to_outputs(self, per_unit, outputs):
        """Reshapes a per-unit vector so that it adds to the outputs."""
        rank = len(outputs.shape)
        shape = [1] * rank
        shape[self._channel_axis()] = -1
        return ops.reshape(per_unit, shape)

    def _scaled_linear(self, inputs, scale):
        """The linear map with kernel ``v * scale`` (scale per unit)."""
        dtype = self.compute_dtype
        direction = ops.convert_to_tensor(self.layer.kernel)
        if isinstance(self.layer, _DENSE):
            outputs = ops.matmul(inputs, ops.cast(direction, dtype))
            scale = ops.cast(scale, dtype)
            if _tracing_for_xla():
                return _scale_last_axis_for_xla(outputs, scale)
            return ops.multiply(outputs, scale)
        kernel = ops.multiply(direction, self._broadcast_to_kernel(scale))
        return self._linear(inputs, ops.cast(kernel, dtype))

    def _linear(self, inputs, kernel):
        """The wrapped layer's linear map, without bias and activation."""
        layer = self.layer
        if isinstance(layer, _CONV):
            return layer.convolution_op(inputs, kernel)
        if isinstance(layer, _CONV_TRANSPOSE):
            return ops.conv_transpose(
                inputs,
                kernel,
                strides=list(layer.strides),
                padding=layer.padding,
                output_padding=layer.output_padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        return ops.depthwise_conv(
            inputs,
            kernel,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )


def _plain_copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A built copy of ``layer`` holding the same weight values."""
    if isinstance(layer, WeightNorm):
        inner = layer.layer
        config = inner.get_config()
        config["name"] = layer.name
        copy = type(inner).from_config(config)
        copy.build_from_config(inner.get_build_config())
        values = [keras.ops.convert_to_numpy(layer.effective_kernel())]
        if inner.bias is not None:
            values.append(keras.ops.convert_to_numpy(inner.bias))
        copy.set_weights(values)
        return copy
    copy = type(layer).from_config(layer.get_config())
    build_config = layer.get_build_config()
    if build_config is not None:
        copy.build_from_config(build_config)
        copy.set_weights(layer.get_weights())
    return copy


def fold_weight_norm(model: keras.Model) -> keras.Model:
    """Returns an equivalent model without `WeightNorm` wrappers.

    Every `WeightNorm` layer is replaced by a plain copy of the layer it
    wraps, whose kernel holds the effective kernel ``g * v / ||v||``; every
    other layer is copied with its weights. The result computes the same
    outputs (up to floating-point rounding), has fewer variables and no
    dependency on this package, which suits inference and export. The
    original model is left untouched.

    Args:
        model: A built functional or Sequential model; nested functional
            and Sequential models are folded too.

    Returns:
        A new model of the same kind.

    Raises:
        ValueError: If ``model`` is a subclassed model, which Keras cannot
            clone layer by layer, or is not built.

    Example:

    >>> import numpy as np
    >>> inputs = keras.Input((4,))
    >>> outputs = WeightNorm(keras.layers.Dense(2))(inputs)
    >>> model = keras.Model(inputs, outputs)
    >>> folded = fold_weight_norm(model)
    >>> x = np.ones((3, 4), "float32")
    >>> bool(np.allclose(model(x), folded(x), atol=1e-5))
    True
    """
    is_graph_model = isinstance(model, keras.Sequential) or (
        isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")
    )
    if not is_graph_model:
        raise ValueError(
            "fold_weight_norm: `model` must be a functional or Sequential "
            f"keras.Model; got {type(model).__name__}. Subclassed models "
            "cannot be cloned layer by layer: rebuild the model with the "
            "unwrapped layers and copy `effective_kernel()` into them."
        )
    if not model.built:
        raise ValueError(
            "fold_weight_norm: `model` is not built. Call it on a batch or "
            "build it with an input shape first."
        )
    return keras.models.clone_model(
        model, clone_function=_plain_copy, recursive=True
    )

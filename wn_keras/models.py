"""The networks of the paper, built for every initialization scheme.

Four builders return functional `keras.Model`s that output logits (no
softmax): `mlp`, `cnn`, `resnet` (CIFAR ResNet, depth 6N+2) and
`wide_resnet` (WRN-d-k, depth 6N+4). Each takes the same keyword
arguments:

- `weight_norm`: wrap every hidden Dense / convolution (not the
  classifier) in `wn_keras.WeightNorm`.
- `batch_norm`: batch-normalized variant; residual networks then use
  pre-activation blocks (BN-ReLU-conv-BN-ReLU-conv), plain networks
  Dense/conv -> BN -> ReLU.
- `init`: one of `INIT_SCHEMES`.

  - `"he"`, `"orthogonal"`: Keras' `he_normal` / `orthogonal` kernels;
    under weight normalization the lengths start at `g = ||v||`, so the
    effective kernel is the one drawn (the "default" WN init).
  - `"he_datadep"`, `"orthogonal_datadep"`: the same directions, then
    `initialize(model, init, x)` runs the data-dependent init of Salimans
    & Kingma (2016) on a batch.
  - `"he_proposed"`, `"orthogonal_proposed"`: the robust init of Arpit,
    Campos & Bengio (arXiv:1906.02341): Gaussian or orthogonal directions,
    zero biases and lengths `g = sqrt(gamma * fan_in / fan_out)`, with
    `gamma = 2` for a layer followed by a ReLU (hidden layers, a block's
    first convolution, the ResNet stem), `gamma = 1 / B_k` for the second
    convolution of a block in a stage of `B_k` blocks, `gamma = 1` for
    projection shortcuts and the Wide-ResNet stem.

- `residual_scaling`: `"proposed"` (`gamma = 1 / B_k` above) or
  `"hanin"`, the stage-wise scaling of Hanin & Rolnick (2018),
  `gamma = 0.9 ** (2 * b)` for block `b` (1-based, restarting in each
  stage). Only residual networks under a `*_proposed` scheme use it.
- `downsample_stem`: stride 2 in the first convolution of a residual
  network, which quarters the memory of very deep ones.
- `seed`: layer `i` (in creation order) draws its kernel with seed
  `seed + i`, so a model is reproducible; `None` draws afresh.

Layer names are fixed so that analysis code can find them:

- MLP / CNN: hidden layer `i` (1-based) is `layer{i}` (the `WeightNorm`
  wrapper, around a plain layer named `layer{i}_inner`, or the plain
  layer itself), then `layer{i}_bn` with batch norm, then `layer{i}_relu`.
  The MLP flattens its input in `flatten`.
- ResNet / WRN: `stem_conv` (and `stem_relu` in a ResNet without batch
  norm); the layers of block `b` of stage `s` are named
  `stage{s}_block{b}_` followed by, in order, `conv1`, `relu1`, `conv2`
  without batch norm, or `bn1`, `relu1`, `conv1`, `bn2`, `relu2`, `conv2`
  with it; then `shortcut` (a 1x1 projection, only where the shape
  changes) and `add`, the residual addition, whose output is the block's.
  Batch-normalized nets end in `final_bn`, `final_relu`. All end in `pool`
  (global average pooling) and `classifier`.

Bias convention: without batch norm every hidden layer has a bias, set to
zero. With batch norm no hidden Dense or convolution has a bias (the
normalization's offset plays its role), as in the usual CIFAR ResNets. The
classifier is a plain Dense with Keras' default initializer and a bias.

Limitations: Keras walks a functional graph recursively, one Python frame
per layer, so a model of more than a few hundred blocks exceeds Python's
default recursion limit. The builders raise `sys.setrecursionlimit` to fit
the model they build (they never lower it); this is a process-wide
setting. On Python 3.10, whose frames live on the C stack, the deepest
models (thousands of blocks) may overflow that stack.

Limitations: creating and connecting the layers costs the same per block
at any depth, but the `keras.Model` constructor then checks that layer
names are unique with a scan that is quadratic in the number of layers;
for WRN-10000 (20,000 layers) that is about 20 seconds of a build of
several minutes (see benchmarks/build_scale.py). Tracing a training step
of such a model into a TensorFlow graph costs minutes more than running it
eagerly (`run_eagerly=True` in `compile`).
"""

import sys
from collections.abc import Sequence
from typing import Any

import keras

from wn_keras.data_init import data_dependent_init
from wn_keras.initializers import RELU_GAIN, ProposedHe, ProposedOrthogonal
from wn_keras.weight_norm import WeightNorm

INIT_SCHEMES = (
    "he",
    "orthogonal",
    "he_datadep",
    "orthogonal_datadep",
    "he_proposed",
    "orthogonal_proposed",
)
RESIDUAL_SCALINGS = ("proposed", "hanin")

# gamma of a layer whose output is not rectified: projection shortcuts
# and the Wide-ResNet stem.
LINEAR_GAIN = 1.0
# Per-block decay of the stage-wise scaling of Hanin & Rolnick (2018).
HANIN_DECAY = 0.9

NUM_STAGES = 3
WRN_STEM_FILTERS = 16
CONV_KERNEL_SIZE = 3
# The released PyTorch code uses PyTorch's batch-norm defaults; in Keras'
# convention (momentum of the moving average) those are:
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# Python frames Keras' graph traversal may need per layer, with margin.
_FRAMES_PER_LAYER = 4
_FRAMES_MARGIN = 2000


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(
            f"{name} must be a positive integer; received {name}={value!r}. "
            f"Pass {name} >= 1."
        )


def _check_options(weight_norm: bool, init: str, residual_scaling: str) -> None:
    if init not in INIT_SCHEMES:
        raise ValueError(
            f"init must be one of {INIT_SCHEMES}; received init={init!r}. "
            "Pick one of the listed schemes."
        )
    if residual_scaling not in RESIDUAL_SCALINGS:
        raise ValueError(
            f"residual_scaling must be one of {RESIDUAL_SCALINGS}; received "
            f"residual_scaling={residual_scaling!r}. Pick one of the listed "
            "scalings."
        )
    if not weight_norm and init not in ("he", "orthogonal"):
        raise ValueError(
            f"init={init!r} sets the lengths g of weight-normalized layers, "
            "so it needs weight_norm=True; received weight_norm=False. Pass "
            "weight_norm=True, or use init='he' or init='orthogonal'."
        )


def _check_image_shape(input_shape: Sequence[int]) -> None:
    if len(input_shape) != 3:
        raise ValueError(
            "input_shape of a convolutional model must have rank 3, "
            "(height, width, channels); received "
            f"input_shape={tuple(input_shape)!r} of rank {len(input_shape)}. "
            "Add the channel axis, e.g. (28, 28, 1)."
        )


def _blocks_per_stage(depth: int, extra_layers: int, family: str) -> int:
    """Returns N for a depth of the form 6N + extra_layers, N >= 1."""
    num_blocks, remainder = divmod(depth - extra_layers, 2 * NUM_STAGES)
    if remainder or num_blocks < 1:
        examples = ", ".join(
            str(2 * NUM_STAGES * n + extra_layers) for n in (1, 2, 3, 9)
        )
        raise ValueError(
            f"depth of a {family} must be 6N+{extra_layers} with N >= 1 "
            f"blocks per stage ({examples}, ...); received depth={depth!r}. "
            f"Pick a depth d with d - {extra_layers} a positive multiple "
            "of 6."
        )
    return num_blocks


def _ensure_recursion_limit(num_layers: int) -> None:
    """Lets Keras' recursive graph walk reach through `num_layers` layers."""
    needed = _FRAMES_PER_LAYER * num_layers + _FRAMES_MARGIN
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def conv2_gain(
    block: int, blocks_in_stage: int, residual_scaling: str
) -> float:
    """gamma of the second convolution of a residual block.

    Args:
        block: index of the block in its stage, counted from 1.
        blocks_in_stage: number of blocks `B_k` in that stage.
        residual_scaling: `"proposed"` gives `1 / B_k` (arXiv:1906.02341);
            `"hanin"` gives `0.9 ** (2 * block)` (Hanin & Rolnick, 2018).

    Returns:
        The gain gamma; under a `*_proposed` scheme the layer's lengths
        start at `g = sqrt(gamma * fan_in / fan_out)`.

    Example:

    >>> conv2_gain(3, 4, "proposed")
    0.25
    """
    if residual_scaling == "hanin":
        return HANIN_DECAY ** (2 * block)
    return 1.0 / blocks_in_stage


class _LayerFactory:
    """Creates the weighted layers of one model for one init scheme."""

    def __init__(
        self, weight_norm: bool, batch_norm: bool, init: str, seed: int | None
    ):
        self.weight_norm = weight_norm
        self.batch_norm = batch_norm
        self.init = init
        self.seed = seed
        self.num_created = 0
        # Hidden layers feeding a batch normalization need no bias.
        self.use_bias = not batch_norm

    def next_seed(self) -> int | None:
        index = self.num_created
        self.num_created += 1
        return None if self.seed is None else self.seed + index

    def kernel_initializer(self, gain: float) -> keras.initializers.Initializer:
        seed = self.next_seed()
        if self.init == "he_proposed":
            return ProposedHe(gain=gain, seed=seed)
        if self.init == "orthogonal_proposed":
            return ProposedOrthogonal(gain=gain, seed=seed)
        if self.init.startswith("he"):
            return keras.initializers.HeNormal(seed=seed)
        return keras.initializers.Orthogonal(seed=seed)

    def wrap(self, layer: keras.layers.Layer, name: str) -> keras.layers.Layer:
        if not self.weight_norm:
            return layer
        return WeightNorm(layer, name=name)

    def dense(self, units: int, gain: float, name: str) -> keras.layers.Layer:
        inner_name = f"{name}_inner" if self.weight_norm else name
        layer = keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer(gain),
            name=inner_name,
        )
        return self.wrap(layer, name)

    def conv(
        self,
        filters: int,
        kernel_size: int,
        strides: int,
        gain: float,
        name: str,
    ) -> keras.layers.Layer:
        inner_name = f"{name}_inner" if self.weight_norm else name
        layer = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer(gain),
            name=inner_name,
        )
        return self.wrap(layer, name)

    def classifier(self, num_classes: int) -> keras.layers.Layer:
        return keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.GlorotUniform(
                seed=self.next_seed()
            ),
            name="classifier",
        )


def _batch_norm(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )


def _plain_network(
    inputs: keras.KerasTensor,
    hidden: keras.KerasTensor,
    factory: _LayerFactory,
    make_layer: Any,
    num_layers: int,
    num_classes: int,
    name: str,
) -> keras.Model:
    """Stacks `num_layers` (linear, [BN], ReLU) layers, then classifies."""
    for i in range(1, num_layers + 1):
        hidden = make_layer(i)(hidden)
        if factory.batch_norm:
            hidden = _batch_norm(f"layer{i}_bn")(hidden)
        hidden = keras.layers.ReLU(name=f"layer{i}_relu")(hidden)
    if len(hidden.shape) > 2:
        hidden = keras.layers.GlobalAveragePooling2D(name="pool")(hidden)
    logits = factory.classifier(num_classes)(hidden)
    return keras.Model(inputs, logits, name=name)


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden_size: int = 128,
    num_layers: int = 2,
    *,
    weight_norm: bool = False,
    batch_norm: bool = False,
    init: str = "he",
    residual_scaling: str = "proposed",
    downsample_stem: bool = False,
    seed: int | None = None,
) -> keras.Model:
    """Multi-layer perceptron: flatten, `num_layers` Dense+ReLU, classifier.

    Under `*_proposed` every hidden layer gets
    `g = sqrt(2 * fan_in / fan_out)` (arXiv:1906.02341, Section 3), which
    keeps `||h^l||` close to `||x||` at any depth.

    Args:
        input_shape: shape of one example, without the batch axis; it is
            flattened.
        num_classes: number of logits.
        hidden_size: units of every hidden layer.
        num_layers: number of hidden layers.
        weight_norm: wrap the hidden layers in `WeightNorm`.
        batch_norm: Dense -> BatchNormalization -> ReLU.
        init: one of `INIT_SCHEMES` (see the module docstring).
        residual_scaling: accepted for a uniform interface and checked;
            unused (no residual blocks).
        downsample_stem: unused (no convolutions).
        seed: base seed; hidden layer `i` uses `seed + i - 1`.

    Returns:
        A functional `keras.Model` mapping inputs to logits.

    Raises:
        ValueError: for a size below 1, an unknown `init` or
            `residual_scaling`, or a `*_datadep` / `*_proposed` scheme
            without `weight_norm`.

    Example:

    >>> model = mlp((28, 28), 10, num_layers=3, weight_norm=True,
    ...             init="orthogonal_proposed", seed=0)
    >>> model.output_shape
    (None, 10)
    """
    del downsample_stem  # An MLP has no convolution to stride.
    _check_options(weight_norm, init, residual_scaling)
    for arg_name, value in (
        ("num_classes", num_classes),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
    ):
        _check_positive(arg_name, value)
    _ensure_recursion_limit(3 * num_layers)
    factory = _LayerFactory(weight_norm, batch_norm, init, seed)
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    hidden = keras.layers.Flatten(name="flatten")(inputs)

    def make_layer(i: int) -> keras.layers.Layer:
        return factory.dense(hidden_size, RELU_GAIN, f"layer{i}")

    return _plain_network(
        inputs, hidden, factory, make_layer, num_layers, num_classes, "mlp"
    )


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    hidden_size: int = 128,
    num_layers: int = 2,
    *,
    weight_norm: bool = False,
    batch_norm: bool = False,
    init: str = "he",
    residual_scaling: str = "proposed",
    downsample_stem: bool = False,
    seed: int | None = None,
) -> keras.Model:
    """Plain convolutional network: 3x3 conv+ReLU layers, pooling, classifier.

    The first two convolutions have stride 2, the others stride 1; all use
    "same" padding and `hidden_size` filters. Under `*_proposed` every
    convolution gets `g = sqrt(2 * fan_in / fan_out)` (arXiv:1906.02341).

    Args:
        input_shape: `(height, width, channels)` of one example.
        num_classes: number of logits.
        hidden_size: filters of every convolution.
        num_layers: number of convolutions.
        weight_norm: wrap the convolutions in `WeightNorm`.
        batch_norm: Conv -> BatchNormalization -> ReLU.
        init: one of `INIT_SCHEMES` (see the module docstring).
        residual_scaling: accepted for a uniform interface and checked;
            unused (no residual blocks).
        downsample_stem: unused: the first convolution has stride 2 anyway.
        seed: base seed; convolution `i` uses `seed + i - 1`.

    Returns:
        A functional `keras.Model` mapping images to logits.

    Raises:
        ValueError: for a size below 1, an `input_shape` not of rank 3, an
            unknown `init` or `residual_scaling`, or a `*_datadep` /
            `*_proposed` scheme without `weight_norm`.

    Example:

    >>> model = cnn((32, 32, 3), 10, hidden_size=8, num_layers=3)
    >>> model.get_layer("layer3").output.shape
    (None, 8, 8, 8)
    """
    del downsample_stem  # The first convolution is strided already.
    _check_options(weight_norm, init, residual_scaling)
    _check_image_shape(input_shape)
    for arg_name, value in (
        ("num_classes", num_classes),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
    ):
        _check_positive(arg_name, value)
    _ensure_recursion_limit(3 * num_layers)
    factory = _LayerFactory(weight_norm, batch_norm, init, seed)
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")

    def make_layer(i: int) -> keras.layers.Layer:
        strides = 2 if i <= 2 else 1
        return factory.conv(
            hidden_size, CONV_KERNEL_SIZE, strides, RELU_GAIN, f"layer{i}"
        )

    return _plain_network(
        inputs, inputs, factory, make_layer, num_layers, num_classes, "cnn"
    )


def _residual_block(
    block_input: keras.KerasTensor,
    factory: _LayerFactory,
    filters: int,
    strides: int,
    second_gain: float,
    prefix: str,
) -> keras.KerasTensor:
    """One basic block; returns the output of its residual addition.

    Without batch norm: `h + conv2(relu(conv1(h)))`, no ReLU after the
    addition. With it (pre-activation): `a = relu(bn1(h))`,
    `h + conv2(relu(bn2(conv1(a))))`. Where the shape changes, `h` on the
    shortcut is replaced by a 1x1 strided projection of `h` (of `a` with
    batch norm).
    """
    branch = block_input
    if factory.batch_norm:
        branch = _batch_norm(f"{prefix}_bn1")(branch)
        branch = keras.layers.ReLU(name=f"{prefix}_relu1")(branch)
    projection_input = branch
    branch = factory.conv(
        filters, CONV_KERNEL_SIZE, strides, RELU_GAIN, f"{prefix}_conv1"
    )(branch)
    if factory.batch_norm:
        branch = _batch_norm(f"{prefix}_bn2")(branch)
        branch = keras.layers.ReLU(name=f"{prefix}_relu2")(branch)
    else:
        branch = keras.layers.ReLU(name=f"{prefix}_relu1")(branch)
    branch = factory.conv(
        filters, CONV_KERNEL_SIZE, 1, second_gain, f"{prefix}_conv2"
    )(branch)
    shortcut = block_input
    if strides != 1 or block_input.shape[-1] != filters:
        shortcut = factory.conv(
            filters, 1, strides, LINEAR_GAIN, f"{prefix}_shortcut"
        )(projection_input)
    return keras.layers.Add(name=f"{prefix}_add")([shortcut, branch])


def _residual_network(
    input_shape: Sequence[int],
    num_classes: int,
    factory: _LayerFactory,
    stem_filters: int,
    stem_gain: float,
    stem_relu: bool,
    stage_widths: Sequence[int],
    blocks_per_stage: int,
    residual_scaling: str,
    downsample_stem: bool,
    name: str,
) -> keras.Model:
    """Stem, three stages of basic blocks, pooling and classifier."""
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    hidden = factory.conv(
        stem_filters,
        CONV_KERNEL_SIZE,
        2 if downsample_stem else 1,
        stem_gain,
        "stem_conv",
    )(inputs)
    if stem_relu:
        hidden = keras.layers.ReLU(name="stem_relu")(hidden)
    for stage, filters in enumerate(stage_widths, start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            hidden = _residual_block(
                hidden,
                factory,
                filters,
                strides,
                conv2_gain(block, blocks_per_stage, residual_scaling),
                f"stage{stage}_block{block}",
            )
    if factory.batch_norm:
        hidden = _batch_norm("final_bn")(hidden)
        hidden = keras.layers.ReLU(name="final_relu")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D(name="pool")(hidden)
    logits = factory.classifier(num_classes)(hidden)
    return keras.Model(inputs, logits, name=name)


def resnet(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int = 56,
    base_width: int = 16,
    *,
    weight_norm: bool = False,
    batch_norm: bool = False,
    init: str = "he",
    residual_scaling: str = "proposed",
    downsample_stem: bool = False,
    seed: int | None = None,
) -> keras.Model:
    """CIFAR ResNet of depth 6N+2 (He et al., 2016) with basic blocks.

    A 3x3 stem convolution with `base_width` filters, then three stages of
    N blocks of two 3x3 convolutions with `base_width * (1, 2, 4)` filters
    (stride 2 entering stages 2 and 3), global average pooling and the
    classifier. Without batch norm the stem is followed by a ReLU, so its
    gain under `*_proposed` is 2 (arXiv:1906.02341); with batch norm the
    blocks are pre-activation ones and the stem has no ReLU of its own.

    Args:
        input_shape: `(height, width, channels)` of one example.
        num_classes: number of logits.
        depth: 6N+2 with N >= 1 blocks per stage (20, 56, 110, ...).
        base_width: filters of the stem and the first stage.
        weight_norm: wrap every convolution in `WeightNorm`.
        batch_norm: pre-activation blocks, BN-ReLU-conv-BN-ReLU-conv.
        init: one of `INIT_SCHEMES` (see the module docstring).
        residual_scaling: one of `RESIDUAL_SCALINGS`, the gain of each
            block's second convolution under `*_proposed`.
        downsample_stem: stride 2 in the stem convolution.
        seed: base seed; each weighted layer uses the next integer.

    Returns:
        A functional `keras.Model` mapping images to logits.

    Raises:
        ValueError: for a depth not of the form 6N+2, a size below 1, an
            `input_shape` not of rank 3, an unknown `init` or
            `residual_scaling`, or a `*_datadep` / `*_proposed` scheme
            without `weight_norm`.

    Example:

    >>> model = resnet((32, 32, 3), 10, depth=20)
    >>> model.get_layer("stage3_block3_add").output.shape
    (None, 8, 8, 64)
    """
    _check_options(weight_norm, init, residual_scaling)
    _check_image_shape(input_shape)
    _check_positive("num_classes", num_classes)
    _check_positive("base_width", base_width)
    blocks = _blocks_per_stage(depth, 2, "ResNet")
    _ensure_recursion_limit(depth * 4)
    factory = _LayerFactory(weight_norm, batch_norm, init, seed)
    return _residual_network(
        input_shape,
        num_classes,
        factory,
        stem_filters=base_width,
        stem_gain=RELU_GAIN,
        stem_relu=not batch_norm,
        stage_widths=[base_width * 2**stage for stage in range(NUM_STAGES)],
        blocks_per_stage=blocks,
        residual_scaling=residual_scaling,
        downsample_stem=downsample_stem,
        name=f"resnet{depth}",
    )


def wide_resnet(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int = 40,
    width: int = 10,
    *,
    weight_norm: bool = False,
    batch_norm: bool = False,
    init: str = "he",
    residual_scaling: str = "proposed",
    downsample_stem: bool = False,
    seed: int | None = None,
) -> keras.Model:
    """Wide ResNet WRN-d-k (Zagoruyko & Komodakis, 2016), depth 6N+4.

    A 3x3 stem convolution with 16 filters and no ReLU after it (gain 1
    under `*_proposed`, as in the code released with arXiv:1906.02341),
    three stages of N basic blocks with `16k`, `32k`, `64k` filters (stride
    2 entering stages 2 and 3; a 1x1 projection wherever the shape changes,
    so in the first block of stage 1 too when `k != 1`), global average
    pooling and the classifier.

    Args:
        input_shape: `(height, width, channels)` of one example.
        num_classes: number of logits.
        depth: 6N+4 with N >= 1 blocks per stage (10, 28, 40, ...).
        width: the widening factor k.
        weight_norm: wrap every convolution in `WeightNorm`.
        batch_norm: pre-activation blocks, BN-ReLU-conv-BN-ReLU-conv.
        init: one of `INIT_SCHEMES` (see the module docstring).
        residual_scaling: one of `RESIDUAL_SCALINGS`, the gain of each
            block's second convolution under `*_proposed`.
        downsample_stem: stride 2 in the stem convolution, for very deep
            networks.
        seed: base seed; each weighted layer uses the next integer.

    Returns:
        A functional `keras.Model` mapping images to logits.

    Raises:
        ValueError: for a depth not of the form 6N+4, a size below 1, an
            `input_shape` not of rank 3, an unknown `init` or
            `residual_scaling`, or a `*_datadep` / `*_proposed` scheme
            without `weight_norm`.

    Example:

    >>> model = wide_resnet((32, 32, 3), 10, depth=16, width=4)
    >>> model.get_layer("stage1_block1_shortcut").output.shape
    (None, 32, 32, 64)
    """
    _check_options(weight_norm, init, residual_scaling)
    _check_image_shape(input_shape)
    _check_positive("num_classes", num_classes)
    _check_positive("width", width)
    blocks = _blocks_per_stage(depth, 4, "Wide ResNet")
    _ensure_recursion_limit(depth * 4)
    factory = _LayerFactory(weight_norm, batch_norm, init, seed)
    return _residual_network(
        input_shape,
        num_classes,
        factory,
        stem_filters=WRN_STEM_FILTERS,
        stem_gain=LINEAR_GAIN,
        stem_relu=False,
        stage_widths=[
            WRN_STEM_FILTERS * width * 2**stage for stage in range(NUM_STAGES)
        ],
        blocks_per_stage=blocks,
        residual_scaling=residual_scaling,
        downsample_stem=downsample_stem,
        name=f"wrn_{depth}_{width}",
    )


def initialize(
    model: keras.Model, init: str, x: Any = None
) -> dict[str, Any] | None:
    """Finishes the initialization of a built model for its scheme.

    The `*_datadep` schemes need data: this runs
    `wn_keras.data_dependent_init` on the batch `x` (Salimans & Kingma,
    2016), which sets every `WeightNorm` layer's lengths and biases so that
    its pre-activations have zero mean and unit variance on `x`. Every
    other scheme is complete once the model is built, and this does nothing.

    Args:
        model: a model built by this module with the same `init`.
        init: one of `INIT_SCHEMES`.
        x: a batch of inputs; required for `*_datadep` schemes.

    Returns:
        What `data_dependent_init` returns for `*_datadep` schemes, else
        `None`.

    Raises:
        ValueError: for an unknown `init`, or a `*_datadep` scheme without
            `x`.

    Example:

    >>> import numpy as np
    >>> model = mlp((4,), 2, weight_norm=True, init="he_datadep", seed=0)
    >>> x = np.random.default_rng(0).normal(size=(16, 4))
    >>> stats = initialize(model, "he_datadep", x)
    >>> sorted(stats)
    ['layer1', 'layer2']
    """
    if init not in INIT_SCHEMES:
        raise ValueError(
            f"init must be one of {INIT_SCHEMES}; received init={init!r}. "
            "Pick the scheme the model was built with."
        )
    if not init.endswith("_datadep"):
        return None
    if x is None:
        raise ValueError(
            f"init={init!r} initializes from data, so x must be a batch of "
            "inputs; received x=None. Pass a batch, e.g. the first training "
            "batch."
        )
    return data_dependent_init(model, x)

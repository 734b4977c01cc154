"""Tests of wn_keras.models: structure, parameter counts, gains, scale.

References are computed here, independently of the builders: parameter
counts by arithmetic over the architecture's description, the lengths
`g = sqrt(gamma * fan_in / fan_out)` from each kernel's shape and the
gamma the paper assigns to the layer's role (arXiv:1906.02341), norms and
statistics with numpy.
"""

import math
import re

import keras
import numpy as np
import pytest

from wn_keras import WeightNorm, models

NUM_CLASSES = 3
IMAGE_SHAPE = (8, 8, 2)
# Tiny versions of the four architectures: (builder, size arguments).
ARCHITECTURES = {
    "mlp": (models.mlp, dict(input_shape=(6, 6), hidden_size=8, num_layers=3)),
    "cnn": (
        models.cnn,
        dict(input_shape=IMAGE_SHAPE, hidden_size=4, num_layers=3),
    ),
    "resnet": (
        models.resnet,
        dict(input_shape=IMAGE_SHAPE, depth=14, base_width=4),
    ),
    "wrn": (
        models.wide_resnet,
        dict(input_shape=IMAGE_SHAPE, depth=16, width=2),
    ),
}
# The shared list of (architecture, scheme) cases, all weight-normalized.
CASES = [
    pytest.param(arch, init, id=f"{arch}-{init}")
    for arch in ARCHITECTURES
    for init in models.INIT_SCHEMES
]
# Tolerance on lengths g compared with a float32 computation.
G_RTOL = 1e-5


def build(arch: str, **kwargs) -> keras.Model:
    builder, sizes = ARCHITECTURES[arch]
    return builder(num_classes=NUM_CLASSES, **sizes, **kwargs)


def batch(model: keras.Model, size: int = 16, seed: int = 0) -> np.ndarray:
    shape = (size,) + tuple(model.input.shape[1:])
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def wn_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, WeightNorm)]


def outputs_of(model: keras.Model, names: list, x: np.ndarray) -> list:
    """Runs `x` through `model`, returning the outputs of the named layers."""
    probe = keras.Model(
        model.input, [model.get_layer(name).output for name in names]
    )
    values = probe(x)
    if not isinstance(values, (list, tuple)):
        values = [values]
    return [np.asarray(value, dtype=np.float64) for value in values]


def expected_gamma(name: str, arch: str, scaling: str, blocks: int) -> float:
    """gamma of a layer from its role (arXiv:1906.02341, Section 4)."""
    if name == "stem_conv":
        # The WRN stem has no ReLU after it, the ResNet stem has.
        return 1.0 if arch == "wrn" else 2.0
    if name.endswith("_shortcut"):
        return 1.0
    if name.endswith("_conv2"):
        block = int(re.search(r"block(\d+)_", name).group(1))
        if scaling == "hanin":
            return 0.81**block
        return 1.0 / blocks
    # Hidden layers of plain nets and the first convolution of a block.
    return 2.0


def blocks_per_stage(arch: str) -> int:
    sizes = ARCHITECTURES[arch][1]
    return (sizes["depth"] - (4 if arch == "wrn" else 2)) // 6


# Structure ----------------------------------------------------------------


def test_resnet_structure_follows_the_cifar_layout():
    model = models.resnet((32, 32, 3), 10, depth=20, base_width=16)
    names = [layer.name for layer in model.layers]
    assert len([n for n in names if n.endswith("_add")]) == 9
    shortcuts = sorted(n for n in names if n.endswith("_shortcut"))
    assert shortcuts == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    for stage, size, filters in ((1, 32, 16), (2, 16, 32), (3, 8, 64)):
        layer = model.get_layer(f"stage{stage}_block3_add")
        assert tuple(layer.output.shape) == (None, size, size, filters)
    assert "stem_relu" in names
    assert model.output_shape == (None, 10)
    assert model.get_layer("classifier").activation is keras.activations.linear


def test_wide_resnet_projects_in_stage_one_when_widened():
    widened = models.wide_resnet(IMAGE_SHAPE, 10, depth=10, width=2)
    assert "stage1_block1_shortcut" in [x.name for x in widened.layers]
    thin = models.wide_resnet(IMAGE_SHAPE, 10, depth=10, width=1)
    thin_names = [layer.name for layer in thin.layers]
    assert "stage1_block1_shortcut" not in thin_names
    assert "stem_relu" not in thin_names
    stem = widened.get_layer("stem_conv")
    assert tuple(stem.output.shape) == (None, 8, 8, 16)
    last = widened.get_layer("stage3_block1_add")
    assert tuple(last.output.shape) == (None, 2, 2, 128)


def test_downsample_stem_halves_the_resolution():
    model = models.wide_resnet(
        IMAGE_SHAPE, 10, depth=10, width=1, downsample_stem=True
    )
    assert tuple(model.get_layer("stem_conv").output.shape) == (None, 4, 4, 16)


def test_weight_norm_residual_block_has_no_relu_after_the_addition():
    model = build("resnet", weight_norm=True, init="orthogonal_proposed")
    for layer in model.layers:
        if isinstance(layer, keras.layers.ReLU):
            source = layer.input._keras_history[0]
            assert not source.name.endswith("_add"), layer.name
    conv1 = model.get_layer("stage1_block2_conv1")
    assert conv1.input._keras_history[0].name == "stage1_block1_add"


def test_plain_network_layer_names_and_strides():
    model = build("cnn", weight_norm=True, batch_norm=True)
    for i in (1, 2, 3):
        assert isinstance(model.get_layer(f"layer{i}"), WeightNorm)
        assert model.get_layer(f"layer{i}").layer.name == f"layer{i}_inner"
        model.get_layer(f"layer{i}_bn")
    sizes = [
        model.get_layer(f"layer{i}_relu").output.shape[1] for i in (1, 2, 3)
    ]
    assert sizes == [4, 2, 2]
    plain = build("mlp")
    assert isinstance(plain.get_layer("layer2"), keras.layers.Dense)
    assert isinstance(plain.get_layer("flatten"), keras.layers.Flatten)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_classifier_is_a_plain_dense(arch):
    model = build(arch, weight_norm=True, init="orthogonal_proposed")
    classifier = model.get_layer("classifier")
    assert type(classifier) is keras.layers.Dense
    assert model.layers[-1] is classifier


# Parameter counts ---------------------------------------------------------


def conv_params(k: int, c_in: int, c_out: int, bias: bool, wn: bool) -> int:
    return k * k * c_in * c_out + c_out * (int(bias) + int(wn))


def residual_params(
    in_channels: int,
    stem_filters: int,
    widths: list,
    blocks: int,
    wn: bool,
    bn: bool,
    classes: int,
) -> int:
    """Hand count: kernels, biases (none with BN), g, 4 BN values/channel.

    Batch norm holds gamma, beta and the two moving statistics per channel
    (`count_params` counts the non-trainable ones too).
    """
    bias = not bn
    total = conv_params(3, in_channels, stem_filters, bias, wn)
    channels = stem_filters
    for stage, width in enumerate(widths):
        for block in range(blocks):
            if bn:
                total += 4 * channels + 4 * width
            total += conv_params(3, channels, width, bias, wn)
            total += conv_params(3, width, width, bias, wn)
            if channels != width or (stage > 0 and block == 0):
                total += conv_params(1, channels, width, bias, wn)
            channels = width
    if bn:
        total += 4 * channels
    return total + channels * classes + classes


@pytest.mark.parametrize(
    "wn, bn", [(False, False), (True, False), (False, True), (True, True)]
)
def test_resnet56_parameter_count(wn, bn):
    model = models.resnet(
        (32, 32, 3), 10, depth=56, weight_norm=wn, batch_norm=bn
    )
    expected = residual_params(3, 16, [16, 32, 64], 9, wn, bn, 10)
    assert model.count_params() == expected
    if bn and not wn:
        # He et al. (2016) report 0.85M for CIFAR ResNet-56 (bias-free
        # convolutions); ours adds 1x1 projections and BN statistics.
        assert 0.85e6 < model.count_params() < 0.87e6


@pytest.mark.parametrize("wn, bn", [(True, False), (False, True)])
def test_wrn16_4_parameter_count(wn, bn):
    model = models.wide_resnet(
        (32, 32, 3), 10, depth=16, width=4, weight_norm=wn, batch_norm=bn
    )
    expected = residual_params(3, 16, [64, 128, 256], 2, wn, bn, 10)
    assert model.count_params() == expected
    # Zagoruyko & Komodakis (2016) report 2.7M parameters for WRN-16-4.
    assert 2.7e6 < model.count_params() < 2.8e6


@pytest.mark.parametrize(
    "wn, bn", [(False, False), (True, False), (False, True)]
)
def test_plain_network_parameter_counts(wn, bn):
    bias, g, norm = int(not bn), int(wn), 4 * int(bn)
    per_unit = bias + g + norm
    mlp = models.mlp((28, 28), 10, 128, 3, weight_norm=wn, batch_norm=bn)
    expected = 784 * 128 + 2 * 128 * 128 + 3 * 128 * per_unit + 128 * 10 + 10
    assert mlp.count_params() == expected
    cnn = models.cnn((32, 32, 3), 10, 32, 3, weight_norm=wn, batch_norm=bn)
    expected = 9 * 3 * 32 + 2 * 9 * 32 * 32 + 3 * 32 * per_unit + 32 * 10 + 10
    assert cnn.count_params() == expected


# Initial lengths g --------------------------------------------------------


@pytest.mark.parametrize("arch, init", CASES)
def test_initial_lengths_follow_the_scheme(arch, init):
    model = build(arch, weight_norm=True, init=init, seed=3)
    layers = wn_layers(model)
    assert len(layers) > 0
    for layer in layers:
        kernel = np.asarray(layer.layer.kernel, dtype=np.float64)
        g = np.asarray(layer.magnitude, dtype=np.float64)
        bias = np.asarray(layer.layer.bias)
        np.testing.assert_array_equal(bias, 0.0)
        if init.endswith("_proposed"):
            fan_in, fan_out = kernel.shape[-2], kernel.shape[-1]
            gamma = (
                expected_gamma(
                    layer.name, arch, "proposed", blocks_per_stage(arch)
                )
                if arch in ("resnet", "wrn")
                else 2.0
            )
            want = np.full(fan_out, math.sqrt(gamma * fan_in / fan_out))
        else:
            axes = tuple(range(kernel.ndim - 1))
            want = np.sqrt(np.sum(kernel**2, axis=axes))
        np.testing.assert_allclose(g, want, rtol=G_RTOL, err_msg=layer.name)


@pytest.mark.parametrize("arch", ["resnet", "wrn"])
def test_hanin_scaling_sets_second_convolution_lengths(arch):
    model = build(
        arch,
        weight_norm=True,
        init="he_proposed",
        residual_scaling="hanin",
        seed=1,
    )
    seen_conv2 = 0
    for layer in wn_layers(model):
        shape = layer.layer.kernel.shape
        gamma = expected_gamma(
            layer.name, arch, "hanin", blocks_per_stage(arch)
        )
        want = math.sqrt(gamma * shape[-2] / shape[-1])
        g = np.asarray(layer.magnitude)
        np.testing.assert_allclose(g, want, rtol=G_RTOL, err_msg=layer.name)
        seen_conv2 += layer.name.endswith("_conv2")
    assert seen_conv2 == 3 * blocks_per_stage(arch)


# Seeds --------------------------------------------------------------------


def test_seed_makes_models_reproducible_and_layers_distinct():
    first = build("mlp", weight_norm=True, init="orthogonal_proposed", seed=7)
    again = build("mlp", weight_norm=True, init="orthogonal_proposed", seed=7)
    other = build("mlp", weight_norm=True, init="orthogonal_proposed", seed=8)
    for a, b in zip(first.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kernel = np.asarray(first.get_layer("layer2").direction)
    assert not np.allclose(
        kernel, np.asarray(other.get_layer("layer2").direction)
    )
    # Layers 2 and 3 have kernels of the same shape: their seeds differ.
    assert not np.allclose(
        kernel, np.asarray(first.get_layer("layer3").direction)
    )
    fresh = build("mlp", init="he")
    fresh_again = build("mlp", init="he")
    assert not np.allclose(
        np.asarray(fresh.get_layer("layer1").kernel),
        np.asarray(fresh_again.get_layer("layer1").kernel),
    )


# initialize ---------------------------------------------------------------


@pytest.mark.parametrize("arch, init", CASES)
def test_initialize_finishes_each_scheme(arch, init):
    model = build(arch, weight_norm=True, init=init, seed=5)
    x = batch(model, size=32)
    before = [np.asarray(w) for w in model.weights]
    models.initialize(model, init, x)
    after = [np.asarray(w) for w in model.weights]
    if not init.endswith("_datadep"):
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)
        return
    names = [layer.name for layer in wn_layers(model)]
    for pre in outputs_of(model, names, x):
        axes = tuple(range(pre.ndim - 1))
        np.testing.assert_allclose(pre.mean(axis=axes), 0.0, atol=1e-3)
        np.testing.assert_allclose(pre.std(axis=axes), 1.0, rtol=1e-2)


# Training with batch norm -------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("wn", [False, True], ids=["plain", "wn"])
def test_batch_norm_variants_train_one_step(arch, wn):
    model = build(arch, weight_norm=wn, batch_norm=True, init="orthogonal")
    assert any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in model.layers
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = batch(model, size=8)
    y = np.arange(8) % NUM_CLASSES
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)


def test_saved_model_reloads_with_the_same_outputs(tmp_path):
    model = build("resnet", weight_norm=True, init="orthogonal_proposed")
    path = str(tmp_path / "resnet.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = batch(model, size=4)
    np.testing.assert_allclose(
        np.asarray(reloaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6
    )


# Scale at initialization (arXiv:1906.02341, Sections 3 and 4) ----------


def gaussian_batch(model: keras.Model, size: int, seed: int) -> np.ndarray:
    """Standard normal inputs, as in the paper's synthetic experiment."""
    shape = (size,) + tuple(model.input.shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# Expected E||h^l||^2 / ||h^{l-1}||^2 of the first (784 -> 128) and the
# other (128 -> 128) layers of a ReLU MLP.
MLP_ENERGY_GAINS = [
    # g = sqrt(2 * fan_in / fan_out): 1 everywhere.
    ("orthogonal_proposed", 1.0, 1.0),
    # g = ||v|| = 1: a 784 -> 128 orthogonal map keeps 128/784 of the
    # energy, the ReLU half of it.
    ("orthogonal", 0.5 * 128 / 784, 0.5),
]


@pytest.mark.parametrize(
    "init, first_gain, layer_gain",
    MLP_ENERGY_GAINS,
    ids=["proposed", "default"],
)
def test_deep_mlp_energy_gain_per_layer(init, first_gain, layer_gain):
    # Per draw, ||h^l|| / ||x|| drifts like a random walk in log space
    # (about 10% per layer at width 128), so a single deep draw need not
    # stay near 1; the per-layer gain averaged over layers and inputs is
    # what the initialization fixes (arXiv:1906.02341, Section 3).
    depth = 50
    model = models.mlp(
        (28, 28), 10, num_layers=depth, weight_norm=True, init=init, seed=0
    )
    x = gaussian_batch(model, 64, seed=0)
    names = [f"layer{i}_relu" for i in range(1, depth + 1)]
    squared = [np.sum(x.reshape(len(x), -1) ** 2, axis=1)]
    squared += [np.sum(h**2, axis=1) for h in outputs_of(model, names, x)]
    gains = np.array([b / a for a, b in zip(squared[:-1], squared[1:])])
    assert 0.8 * first_gain <= gains[0].mean() <= 1.25 * first_gain
    assert abs(gains[1:].mean() - layer_gain) <= 0.1 * layer_gain


def assert_proposed_mlp_stays_in_band(
    depth: int, hidden_size: int, size: int
) -> None:
    """||h^l|| / ||x||, averaged over inputs, lies in [0.5, 2] at every l."""
    model = models.mlp(
        (28, 28),
        10,
        hidden_size=hidden_size,
        num_layers=depth,
        weight_norm=True,
        init="orthogonal_proposed",
        seed=0,
    )
    x = gaussian_batch(model, size, seed=0)
    x_norm = np.linalg.norm(x.reshape(len(x), -1), axis=1)
    names = [f"layer{i}_relu" for i in range(1, depth + 1)]
    for name, h in zip(names, outputs_of(model, names, x)):
        ratio = np.mean(np.linalg.norm(h, axis=1) / x_norm)
        assert 0.5 <= ratio <= 2.0, (name, ratio)


def test_proposed_mlp_norm_ratio_stays_bounded_at_moderate_depth():
    assert_proposed_mlp_stays_in_band(depth=20, hidden_size=128, size=64)


@pytest.mark.slow
def test_proposed_mlp_of_depth_200_stays_bounded_at_width_1024():
    # The per-draw drift of log ||h|| shrinks like 1 / sqrt(width): at
    # width 128 a depth-200 draw typically ends near 0.07 (see
    # experiments/scale_check.py), at width 1024 it stays in [0.5, 2].
    assert_proposed_mlp_stays_in_band(depth=200, hidden_size=1024, size=32)


def test_proposed_wide_resnet_stage_growth_is_bounded():
    # Over the identity-shortcut blocks of a stage of B blocks, each block
    # multiplies E||h||^2 by 1 + 1/B, so the norm grows by a factor in
    # [1, sqrt(e)]. A projection block changes width and resolution, so
    # the measurement starts after it. Averaged over two draws, since the
    # bound is on an expectation.
    depth, blocks, seeds = 28, 4, (0, 1)
    ratios = np.zeros((len(seeds), 3))
    for row, seed in enumerate(seeds):
        model = models.wide_resnet(
            (16, 16, 3),
            10,
            depth=depth,
            width=1,
            weight_norm=True,
            init="orthogonal_proposed",
            seed=seed,
        )
        x = gaussian_batch(model, 32, seed=seed)
        for stage in (1, 2, 3):
            first = "stem_conv" if stage == 1 else f"stage{stage}_block1_add"
            last = f"stage{stage}_block{blocks}_add"
            start, end = outputs_of(model, [first, last], x)
            norm_in = np.linalg.norm(start.reshape(len(x), -1), axis=1)
            norm_out = np.linalg.norm(end.reshape(len(x), -1), axis=1)
            ratios[row, stage - 1] = np.mean(norm_out / norm_in)
    stage_means = ratios.mean(axis=0)
    assert np.all(stage_means >= 1.0), stage_means
    assert np.all(stage_means <= math.sqrt(math.e) * 1.1), stage_means


# Errors -------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_unknown_init_is_rejected(arch):
    with pytest.raises(
        ValueError, match=r"init must be one of .*init='xavier'"
    ):
        build(arch, init="xavier")


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_unknown_residual_scaling_is_rejected(arch):
    with pytest.raises(
        ValueError, match=r"residual_scaling must be one of .*'fixup'"
    ):
        build(arch, residual_scaling="fixup")


@pytest.mark.parametrize("init", ["he_proposed", "orthogonal_datadep"])
def test_weight_norm_schemes_need_weight_norm(init):
    with pytest.raises(ValueError, match=r"needs weight_norm=True"):
        build("resnet", init=init, batch_norm=True)


@pytest.mark.parametrize("depth", [2, 20 + 1, 57])
def test_resnet_depth_must_be_6n_plus_2(depth):
    with pytest.raises(
        ValueError, match=rf"depth of a ResNet must be 6N\+2.*depth={depth}"
    ):
        models.resnet(IMAGE_SHAPE, 10, depth=depth)


@pytest.mark.parametrize("depth", [4, 5000, 40 + 2])
def test_wide_resnet_depth_must_be_6n_plus_4(depth):
    with pytest.raises(
        ValueError,
        match=rf"depth of a Wide ResNet must be 6N\+4.*depth={depth}",
    ):
        models.wide_resnet(IMAGE_SHAPE, 10, depth=depth)


@pytest.mark.parametrize(
    "builder, name, kwargs",
    [
        (models.mlp, "num_classes", dict(num_classes=0)),
        (models.mlp, "hidden_size", dict(hidden_size=0)),
        (models.cnn, "num_layers", dict(num_layers=-1)),
        (models.resnet, "base_width", dict(base_width=0)),
        (models.wide_resnet, "width", dict(width=0)),
    ],
)
def test_non_positive_sizes_are_rejected(builder, name, kwargs):
    arguments = dict(input_shape=IMAGE_SHAPE, num_classes=10) | kwargs
    with pytest.raises(
        ValueError, match=rf"{name} must be a positive integer.*{name}=-?\d"
    ):
        builder(**arguments)


@pytest.mark.parametrize(
    "builder", [models.cnn, models.resnet, models.wide_resnet]
)
def test_convolutional_models_need_rank_3_inputs(builder):
    with pytest.raises(
        ValueError, match=r"input_shape .* must have rank 3.*\(28, 28\)"
    ):
        builder((28, 28), 10)


def test_initialize_errors():
    model = build("mlp", weight_norm=True, init="he_datadep")
    with pytest.raises(ValueError, match=r"init='he_datadep'.*received x=None"):
        models.initialize(model, "he_datadep")
    with pytest.raises(ValueError, match=r"init must be one of .*'lsuv'"):
        models.initialize(model, "lsuv", batch(model))

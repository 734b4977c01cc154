"""Tests for the proposed initializers of arXiv:1906.02341.

Every expected value is computed here from the kernel shape by hand or
with numpy: the per-unit norm `sqrt(gain * fan_in / fan_out)` (forward) or
`sqrt(gain)` (backward), orthonormal columns, isotropic Gaussian
directions.
"""

import doctest
import math

import keras
import numpy as np
import pytest

from wn_keras import initializers as initializers_module
from wn_keras.initializers import ProposedHe, ProposedOrthogonal

INITIALIZERS = [ProposedOrthogonal, ProposedHe]
GAINS = [0.5, 1.0, 2.0, 1.0 / 3.0]
MODES = ["forward", "backward"]

# One list of kernel cases for the whole file: (shape, unit_axis, fan_in,
# fan_out). The fans are worked out by hand with the unit axis moved last:
# fan_in = receptive field * input channels, fan_out = receptive field *
# units. "wide" cases have more units than fan_in.
KERNEL_CASES = {
    "dense": ((64, 32), -1, 64, 32),
    "dense_square": ((16, 16), -1, 16, 16),
    "dense_wide": ((8, 32), -1, 8, 32),
    "conv1d": ((3, 16, 8), -1, 3 * 16, 3 * 8),
    "conv1d_wide": ((3, 4, 16), -1, 3 * 4, 3 * 16),
    "conv2d": ((3, 3, 16, 32), -1, 9 * 16, 9 * 32),
    "conv2d_wide": ((3, 3, 2, 32), -1, 9 * 2, 9 * 32),
    "conv3d": ((2, 3, 3, 4, 8), -1, 18 * 4, 18 * 8),
    # Transposed convolutions: kernel (..., filters, in_channels).
    "conv1d_transpose": ((3, 6, 10), -2, 3 * 10, 3 * 6),
    "conv2d_transpose": ((3, 3, 8, 16), -2, 9 * 16, 9 * 8),
    "conv2d_transpose_wide": ((2, 2, 32, 3), -2, 4 * 3, 4 * 32),
}
TALL_CASES = [
    name
    for name, (shape, unit_axis, _, _) in KERNEL_CASES.items()
    if math.prod(shape) // shape[unit_axis] >= shape[unit_axis]
]
WIDE_CASES = [name for name in KERNEL_CASES if name not in TALL_CASES]

# Relative tolerance of per-unit norms computed in float32.
NORM_RTOL = 1e-5
# Absolute tolerance of V^T V = I for float32 QR.
ORTHOGONALITY_ATOL = 1e-5
# Wide kernels: mean squared cosine between distinct rows of the
# column-normalized kernel, times the number of units n. Each entry of the
# d x d row Gram matrix is then a normalized inner product of two rows of
# length n. For i.i.d. Gaussian directions it is about 1. For a matrix
# with orthonormal rows whose n columns are then rescaled to equal norms,
# the Gram matrix is Q^T (I + E) Q with E the relative spread of the
# squared column norms, so the statistic is about var(E) ~ 2 (n - d) /
# (d (n + 2)): at most 0.18 for the cases here, which all have d >= 8.
# 0.5 lies between the two; over 300 seeds per case the largest value
# measured for the orthogonal draw was 0.30, the smallest for a Gaussian
# draw 0.34.
WIDE_ROW_COSINE_LIMIT = 0.5


def unit_matrix(kernel, unit_axis):
    """Returns the kernel as a float64 `(fan_in, units)` numpy matrix."""
    kernel = np.moveaxis(np.asarray(kernel, dtype=np.float64), unit_axis, -1)
    return kernel.reshape(-1, kernel.shape[-1])


def unit_norms(kernel, unit_axis):
    """Returns the norm of each unit's slice of the kernel."""
    return np.linalg.norm(unit_matrix(kernel, unit_axis), axis=0)


def expected_norm(gain, mode, fan_in, fan_out):
    """The paper's per-unit length g, from hand-computed fans."""
    if mode == "backward":
        return np.sqrt(gain)
    return np.sqrt(gain * fan_in / fan_out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gain", GAINS)
@pytest.mark.parametrize("case", list(KERNEL_CASES))
@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_unit_norms_follow_paper_formula(init_class, case, gain, mode):
    shape, unit_axis, fan_in, fan_out = KERNEL_CASES[case]
    init = init_class(gain=gain, mode=mode, unit_axis=unit_axis, seed=7)
    kernel = init(shape)
    assert tuple(kernel.shape) == shape
    assert kernel.dtype == "float32"
    norms = unit_norms(kernel, unit_axis)
    assert norms.shape == (shape[unit_axis],)
    np.testing.assert_allclose(
        norms, expected_norm(gain, mode, fan_in, fan_out), rtol=NORM_RTOL
    )


@pytest.mark.parametrize("case", TALL_CASES)
def test_orthogonal_columns_are_orthonormal_directions(case):
    shape, unit_axis, _, _ = KERNEL_CASES[case]
    kernel = ProposedOrthogonal(unit_axis=unit_axis, seed=3)(shape)
    matrix = unit_matrix(kernel, unit_axis)
    norms = np.linalg.norm(matrix, axis=0)
    np.testing.assert_allclose(
        matrix.T @ matrix, np.diag(norms**2), atol=ORTHOGONALITY_ATOL
    )
    directions = matrix / norms
    np.testing.assert_allclose(
        directions.T @ directions,
        np.eye(shape[unit_axis]),
        atol=ORTHOGONALITY_ATOL,
    )


def mean_square_row_cosine(kernel, unit_axis):
    """n * mean squared cosine between distinct rows, unit columns."""
    directions = unit_matrix(kernel, unit_axis)
    directions /= np.linalg.norm(directions, axis=0)
    rows = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    fan_in, units = rows.shape
    cosines = (rows @ rows.T)[~np.eye(fan_in, dtype=bool)]
    return units * np.mean(cosines**2)


@pytest.mark.parametrize("case", WIDE_CASES)
def test_orthogonal_wide_kernel_rows_are_nearly_orthogonal(case):
    shape, unit_axis, _, _ = KERNEL_CASES[case]
    kernel = ProposedOrthogonal(unit_axis=unit_axis, seed=3)(shape)
    statistic = mean_square_row_cosine(kernel, unit_axis)
    assert statistic < WIDE_ROW_COSINE_LIMIT


def test_wide_row_statistic_rejects_gaussian_directions():
    # The same statistic on i.i.d. Gaussian directions: near 1, so the
    # limit above does distinguish orthogonal rows from none.
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((16, 64))
    assert mean_square_row_cosine(gaussian, -1) > WIDE_ROW_COSINE_LIMIT


# A uniform random unit vector in R^d has mean 0 and second moment I / d.
# With NUM_DIRECTIONS samples in R^ISOTROPY_DIM, each component of the
# sample mean has standard deviation 1 / sqrt(d N) = 0.0025, each entry of
# the sample second moment at most sqrt(3 / (d (d + 2)) / N) = 0.0014.
# The limits are 8 and 7 of those standard deviations.
ISOTROPY_DIM = 8
NUM_DIRECTIONS = 20000
MEAN_LIMIT = 0.02
SECOND_MOMENT_LIMIT = 0.01


def isotropy_errors(directions):
    """Largest deviations of the sample mean and second moment.

    Args:
        directions: `(d, N)` matrix, one unit direction per column.

    Returns:
        `(max |mean|, max |second moment - I / d|)`.
    """
    dim, count = directions.shape
    mean = directions.mean(axis=1)
    second_moment = directions @ directions.T / count
    return (
        np.max(np.abs(mean)),
        np.max(np.abs(second_moment - np.eye(dim) / dim)),
    )


def test_he_directions_are_isotropic():
    kernel = ProposedHe(seed=11)((ISOTROPY_DIM, NUM_DIRECTIONS))
    matrix = unit_matrix(kernel, -1)
    mean_error, moment_error = isotropy_errors(
        matrix / np.linalg.norm(matrix, axis=0)
    )
    assert mean_error < MEAN_LIMIT
    assert moment_error < SECOND_MOMENT_LIMIT


@pytest.mark.parametrize("wrong", ["uniform_positive", "equal_columns"])
def test_isotropy_check_rejects_wrong_directions(wrong):
    rng = np.random.default_rng(0)
    if wrong == "uniform_positive":
        matrix = rng.uniform(0.0, 1.0, (ISOTROPY_DIM, NUM_DIRECTIONS))
    else:
        column = rng.standard_normal((ISOTROPY_DIM, 1))
        matrix = np.repeat(column, NUM_DIRECTIONS, axis=1)
    mean_error, moment_error = isotropy_errors(
        matrix / np.linalg.norm(matrix, axis=0)
    )
    assert mean_error > MEAN_LIMIT or moment_error > SECOND_MOMENT_LIMIT


# Haar-distributed orthogonal matrices: each entry has mean 0 and standard
# deviation 1 / sqrt(d). Over SIGN_DRAWS seeded 4 x 4 draws, the mean of
# one entry has standard deviation 0.5 / sqrt(200) = 0.035; without the
# sign correction a QR that makes diag(R) negative pins the sign of the
# first column's entries, giving a mean near -0.41.
SIGN_DRAWS = 200
SIGN_MEAN_LIMIT = 0.2


def test_orthogonal_signs_are_uniform():
    init_kwargs = {"gain": 1.0, "mode": "backward"}
    first_entries = [
        np.asarray(ProposedOrthogonal(**init_kwargs, seed=seed)((4, 4)))[0, 0]
        for seed in range(SIGN_DRAWS)
    ]
    assert abs(np.mean(first_entries)) < SIGN_MEAN_LIMIT


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_same_seed_gives_same_kernel(init_class):
    first = init_class(seed=5)((3, 3, 4, 8))
    second = init_class(seed=5)((3, 3, 4, 8))
    other = init_class(seed=6)((3, 3, 4, 8))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_unseeded_instance_draws_fresh_kernels(init_class):
    init = init_class()
    assert not np.allclose(init((16, 8)), init((16, 8)))


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_layers_sharing_unseeded_instance_differ(init_class):
    init = init_class()
    first = keras.layers.Dense(8, kernel_initializer=init)
    second = keras.layers.Dense(8, kernel_initializer=init)
    first.build((None, 16))
    second.build((None, 16))
    assert not np.allclose(first.kernel.numpy(), second.kernel.numpy())


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_global_seed_makes_unseeded_draws_reproducible(init_class):
    keras.utils.set_random_seed(123)
    first = init_class()((16, 8))
    keras.utils.set_random_seed(123)
    second = init_class()((16, 8))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_unwrapped_dense_kernel_has_target_norms(init_class):
    layer = keras.layers.Dense(
        32, kernel_initializer=init_class(gain=2.0, seed=1)
    )
    layer.build((None, 64))
    np.testing.assert_allclose(
        unit_norms(layer.kernel.numpy(), -1),
        np.sqrt(2.0 * 64 / 32),
        rtol=NORM_RTOL,
    )


def test_conv_transpose_kernel_layout_matches_unit_axis():
    # Keras stores a Conv2DTranspose kernel as (kh, kw, filters, in); with
    # unit_axis=-2 each filter gets sqrt(gain * in / filters).
    layer = keras.layers.Conv2DTranspose(
        6, 3, kernel_initializer=ProposedOrthogonal(unit_axis=-2, seed=2)
    )
    layer.build((None, 8, 8, 12))
    kernel = layer.kernel.numpy()
    assert kernel.shape == (3, 3, 6, 12)
    np.testing.assert_allclose(
        unit_norms(kernel, -2), np.sqrt(2.0 * 12 / 6), rtol=NORM_RTOL
    )


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_config_round_trip(init_class):
    init = init_class(gain=0.25, mode="backward", unit_axis=-2, seed=9)
    expected = {"gain": 0.25, "mode": "backward", "unit_axis": -2, "seed": 9}
    assert init.get_config() == expected
    restored = keras.initializers.deserialize(
        keras.initializers.serialize(init)
    )
    assert type(restored) is init_class
    assert restored.get_config() == expected
    rebuilt = init_class.from_config(init.get_config())
    assert rebuilt.get_config() == expected
    np.testing.assert_array_equal(rebuilt((3, 5, 4)), init((3, 5, 4)))
    np.testing.assert_array_equal(restored((3, 5, 4)), init((3, 5, 4)))


# Relative tolerance of norms after rounding to a low-precision dtype:
# about twice the unit roundoff (2^-11 for float16, 2^-8 for bfloat16).
LOW_PRECISION_RTOL = {"float16": 1e-3, "bfloat16": 1e-2}


@pytest.mark.parametrize("dtype", list(LOW_PRECISION_RTOL))
@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_low_precision_dtype(init_class, dtype):
    kernel = init_class(seed=4)((3, 3, 16, 8), dtype=dtype)
    assert kernel.dtype == dtype
    norms = unit_norms(keras.ops.cast(kernel, "float32"), -1)
    np.testing.assert_allclose(
        norms, np.sqrt(2.0 * 16 / 8), rtol=LOW_PRECISION_RTOL[dtype]
    )


@pytest.mark.parametrize("gain", [0.0, -1.0, math.inf, math.nan])
@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_bad_gain_raises(init_class, gain):
    with pytest.raises(ValueError, match=r"`gain` must be a positive finite"):
        init_class(gain=gain)


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_bad_mode_raises(init_class):
    with pytest.raises(
        ValueError, match=r"`mode` must be one of .*Received: mode='fan_in'"
    ):
        init_class(mode="fan_in")


@pytest.mark.parametrize("unit_axis", [0, 1, -3])
@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_bad_unit_axis_raises(init_class, unit_axis):
    with pytest.raises(
        ValueError,
        match=rf"`unit_axis` must be one of .*unit_axis={unit_axis}\.",
    ):
        init_class(unit_axis=unit_axis)


@pytest.mark.parametrize("shape", [(5,), (), (0, 4), (3, 3, 0, 8)])
@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_bad_shape_raises(init_class, shape):
    with pytest.raises(
        ValueError, match=r"`shape` must have at least 2 dimensions"
    ):
        init_class(seed=0)(shape)


@pytest.mark.parametrize("init_class", INITIALIZERS)
def test_integer_dtype_raises(init_class):
    with pytest.raises(
        ValueError, match=r"`dtype` must be a floating.*dtype='int32'"
    ):
        init_class(seed=0)((4, 4), dtype="int32")


def test_docstring_examples_hold():
    failures, _ = doctest.testmod(initializers_module)
    assert failures == 0

"""Tests of the WeightNorm wrapper against numpy and unwrapped layers."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import wn_keras
from wn_keras import WeightNorm, fold_weight_norm, weight_norm

# Float32 tolerance of outputs computed in a different order.
ATOL = 1e-5
RTOL = 1e-5


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """One supported layer type, with an input shape that fits it."""

    name: str
    make: object  # () -> keras layer
    input_shape: tuple  # without the batch axis
    unit_axes: tuple  # kernel axes holding the output units


LAYER_CASES = [
    LayerCase("dense", lambda: keras.layers.Dense(5), (7,), (-1,)),
    LayerCase(
        "conv1d",
        lambda: keras.layers.Conv1D(4, 3, padding="same"),
        (9, 3),
        (-1,),
    ),
    LayerCase(
        "conv2d",
        lambda: keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
        (8, 8, 3),
        (-1,),
    ),
    LayerCase("conv3d", lambda: keras.layers.Conv3D(3, 2), (5, 5, 5, 2), (-1,)),
    LayerCase(
        "conv1d_transpose",
        lambda: keras.layers.Conv1DTranspose(4, 3, strides=2),
        (6, 3),
        (-2,),
    ),
    LayerCase(
        "conv2d_transpose",
        lambda: keras.layers.Conv2DTranspose(4, 3, padding="same"),
        (5, 5, 2),
        (-2,),
    ),
    LayerCase(
        "conv3d_transpose",
        lambda: keras.layers.Conv3DTranspose(2, 2),
        (3, 3, 3, 2),
        (-2,),
    ),
    LayerCase(
        "depthwise_conv2d",
        lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2),
        (6, 6, 3),
        (-2, -1),
    ),
]
CASE_IDS = [case.name for case in LAYER_CASES]


def _inputs(case, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch,) + case.input_shape).astype("float32")


def _numpy_norms(kernel, unit_axes):
    """Per-unit L2 norm, flattened in the kernel's row-major unit order."""
    rank = kernel.ndim
    units = {rank + a for a in unit_axes}
    norm_axes = tuple(a for a in range(rank) if a not in units)
    return np.sqrt(np.sum(kernel**2, axis=norm_axes)).reshape(-1)


def _numpy_effective_kernel(direction, magnitude, unit_axes):
    rank = direction.ndim
    units = {rank + a for a in unit_axes}
    shape = [direction.shape[a] if a in units else 1 for a in range(rank)]
    norms = _numpy_norms(direction, unit_axes).reshape(shape)
    return direction * magnitude.reshape(shape) / norms


def _wrapped_and_plain(case, seed=0):
    """A built wrapper and an unwrapped twin holding the same weights."""
    keras.utils.set_random_seed(seed)
    wrapped = WeightNorm(case.make())
    x = _inputs(case, seed=seed)
    wrapped(x)
    plain = case.make()
    plain(x)
    plain.set_weights(wrapped.layer.get_weights())
    return wrapped, plain, x


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_magnitude_starts_at_direction_norm(case):
    wrapped, _, _ = _wrapped_and_plain(case)
    direction = np.asarray(wrapped.direction)
    np.testing.assert_allclose(
        np.asarray(wrapped.magnitude),
        _numpy_norms(direction, case.unit_axes),
        rtol=RTOL,
    )


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_output_equals_unwrapped_layer_at_init(case):
    wrapped, plain, x = _wrapped_and_plain(case)
    np.testing.assert_allclose(wrapped(x), plain(x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_effective_kernel_matches_numpy_for_any_magnitude(case):
    wrapped, plain, x = _wrapped_and_plain(case)
    rng = np.random.default_rng(1)
    magnitude = rng.uniform(0.5, 2.0, size=wrapped.magnitude.shape)
    wrapped.magnitude.assign(magnitude.astype("float32"))
    expected = _numpy_effective_kernel(
        np.asarray(wrapped.direction), magnitude, case.unit_axes
    )
    np.testing.assert_allclose(
        wrapped.effective_kernel(), expected, atol=ATOL, rtol=RTOL
    )
    # The unwrapped layer holding the numpy kernel is the reference output.
    weights = plain.get_weights()
    weights[0] = expected.astype("float32")
    plain.set_weights(weights)
    np.testing.assert_allclose(wrapped(x), plain(x), atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_gradients_reach_magnitude_and_direction(case):
    wrapped, _, x = _wrapped_and_plain(case)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(wrapped(x)))
    variables = [wrapped.magnitude, wrapped.direction]
    grads = tape.gradient(loss, [v.value for v in variables])
    for variable, grad in zip(variables, grads, strict=True):
        assert grad is not None, variable.path
        assert np.any(np.abs(np.asarray(grad)) > 0), variable.path


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_no_second_copy_of_the_kernel(case):
    wrapped, _, _ = _wrapped_and_plain(case)
    shapes = sorted(tuple(w.shape) for w in wrapped.trainable_weights)
    layer = wrapped.layer
    expected = sorted(
        [tuple(layer.kernel.shape), tuple(layer.bias.shape)]
        + [tuple(wrapped.magnitude.shape)]
    )
    assert shapes == expected
    assert wrapped.direction is layer.kernel


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_compute_output_shape_matches_call(case):
    wrapped, _, x = _wrapped_and_plain(case)
    shape = wrapped.compute_output_shape((None,) + case.input_shape)
    assert tuple(shape[1:]) == tuple(wrapped(x).shape[1:])


def test_direction_gradient_is_orthogonal_to_direction():
    # d/dv of a function of v / ||v|| is orthogonal to v (hand derivation:
    # the output does not change when v is rescaled).
    wrapped = WeightNorm(keras.layers.Dense(3, use_bias=False))
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    wrapped(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(wrapped(x)))
    grad = np.asarray(tape.gradient(loss, wrapped.direction.value))
    direction = np.asarray(wrapped.direction)
    np.testing.assert_allclose(np.sum(grad * direction, axis=0), 0.0, atol=1e-4)


def test_rejects_a_non_layer():
    with pytest.raises(TypeError, match="`layer` must be a keras.layers"):
        WeightNorm("dense")


@pytest.mark.parametrize(
    "layer",
    [keras.layers.BatchNormalization(), keras.layers.LSTM(3)],
    ids=["batch_norm", "lstm"],
)
def test_rejects_unsupported_layers(layer):
    with pytest.raises(ValueError, match="must be one of Dense, Conv1D") as e:
        WeightNorm(layer)
    assert type(layer).__name__ in str(e.value)


def test_rejects_lora_layers():
    dense = keras.layers.Dense(4)
    dense.build((None, 3))
    dense.enable_lora(2)
    with pytest.raises(ValueError, match="LoRA"):
        WeightNorm(dense)(np.ones((1, 3), "float32"))


def _mlp(units=(16, 16), input_dim=10, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_dim,))
    h = inputs
    for i, width in enumerate(units):
        h = WeightNorm(
            keras.layers.Dense(width, activation="relu"), name=f"wn{i}"
        )(h)
    outputs = keras.layers.Dense(classes)(h)
    return keras.Model(inputs, outputs)


def _toy_data(n=64, input_dim=10, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, input_dim)).astype("float32")
    y = np.argmax(x[:, :classes], axis=1)
    return x, y


def test_fit_reduces_the_loss():
    model = _mlp()
    x, y = _toy_data()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def test_jit_compiled_training_matches_eager():
    x, y = _toy_data()
    results = []
    for jit in (False, True):
        model = _mlp(seed=3)
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
        results.append(model.predict(x, verbose=0))
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_xla_tracing_is_detected():
    # Under XLA the norm takes another path; the detector must see
    # jit_compile=True and nothing else.
    seen = {}

    def probe(name):
        def body(x):
            seen[name] = weight_norm._tracing_for_xla()
            return x + 1.0

        return body

    tf.function(probe("xla"), jit_compile=True)(tf.constant(1.0))
    tf.function(probe("graph"))(tf.constant(1.0))
    probe("eager")(tf.constant(1.0))
    assert seen == {"xla": True, "graph": False, "eager": False}


def _check_dense_against_numpy(
    fan_in, batch_shape, jit, unknown_batch=False, seed=0
):
    # y = (x @ v) * g / ||v||, loss = sum(y * r). By hand, with z = x @ v,
    # n = ||v|| per column and s = g / n (sums over every batch axis):
    #   dL/dv = x^T (r * s) - v * sum_b(r * z) * g / n^3,
    #   dL/dg = sum_b(r * z) / n,   dL/dx = (r * s) @ v^T.
    rng = np.random.default_rng(seed)
    units = 5
    layer = WeightNorm(keras.layers.Dense(units, use_bias=False))
    layer.build((None, fan_in))
    v = rng.normal(size=(fan_in, units)).astype("float32")
    g = rng.uniform(0.5, 2.0, size=units).astype("float32")
    layer.direction.assign(v)
    layer.magnitude.assign(g)
    x = rng.normal(size=batch_shape + (fan_in,)).astype("float32")
    r = rng.normal(size=batch_shape + (units,)).astype("float32")
    signature = None
    if unknown_batch:
        # The batch size is then unknown while tracing: the XLA path's
        # halving sums must fall back to a plain sum.
        signature = [
            tf.TensorSpec((None, fan_in), tf.float32),
            tf.TensorSpec((None, units), tf.float32),
        ]

    @tf.function(jit_compile=jit, input_signature=signature)
    def forward_and_gradients(x, r):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * r)
        grads = tape.gradient(
            loss, [x, layer.direction.value, layer.magnitude.value]
        )
        return [y] + grads

    y, dx, dv, dg = (np.asarray(t) for t in forward_and_gradients(x, r))
    v64, g64 = v.astype("float64"), g.astype("float64")
    x64 = x.astype("float64").reshape(-1, fan_in)
    r64 = r.astype("float64").reshape(-1, units)
    z = x64 @ v64
    n = np.sqrt(np.sum(v64**2, axis=0))
    s = g64 / n
    rz = np.sum(r64 * z, axis=0)
    close = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.reshape(-1, units), z * s, **close)
    np.testing.assert_allclose(
        dv, x64.T @ (r64 * s) - v64 * rz * g64 / n**3, **close
    )
    np.testing.assert_allclose(dg, rz / n, **close)
    np.testing.assert_allclose(
        dx.reshape(-1, fan_in), (r64 * s) @ v64.T, **close
    )


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("fan_in", [1, 7, 12, 64])
def test_dense_output_and_gradients_match_numpy(jit, fan_in):
    # Row counts 7 (odd), 12 (halved twice, then summed) and 64 (halved
    # down to one row) cover the XLA path's halving sum of the norm.
    _check_dense_against_numpy(fan_in, (6,), jit, seed=fan_in)


@pytest.mark.parametrize(
    "batch_shape", [(1,), (5,), (8,), (12,), (3, 4)], ids=str
)
def test_dense_xla_scale_gradient_over_batch_shapes(batch_shape):
    # The XLA path sums the gradient of g over the batch by halving: odd,
    # power-of-two, mixed batch sizes and a rank-3 input.
    _check_dense_against_numpy(6, batch_shape, jit=True, seed=len(batch_shape))


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_dense_gradients_with_batch_unknown_while_tracing(jit):
    _check_dense_against_numpy(6, (10,), jit, unknown_batch=True, seed=4)


@pytest.mark.parametrize("rows", [1, 6, 8])
def test_xla_output_scaling_has_exact_second_derivative(rows):
    # L(z, s) = sum(r * z * s) (s per column): by hand dL/dz = r s and
    # dL/ds = sum_b(r z). Projecting that gradient on (u, w),
    # P = sum(u r s) + sum(w sum_b(r z)), whose gradient is dP/dz = r w
    # and dP/ds = sum_b(u r): the hand-written gradient of the XLA output
    # scaling must itself differentiate correctly (Hessian diagnostics).
    rng = np.random.default_rng(rows)
    z, r, u = (
        tf.constant(rng.normal(size=(rows, 4)).astype("float32"))
        for _ in range(3)
    )
    s, w = (tf.constant(rng.normal(size=4).astype("float32")) for _ in range(2))

    @tf.function(jit_compile=True)
    def gradients(z, s):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([z, s])
            with tf.GradientTape() as inner:
                inner.watch([z, s])
                y = weight_norm._scale_last_axis_for_xla(z, s)
                loss = tf.reduce_sum(r * y)
            dz, ds = inner.gradient(loss, [z, s])
            projected = tf.reduce_sum(u * dz) + tf.reduce_sum(w * ds)
        return [y, dz, ds] + outer.gradient(projected, [z, s])

    y, dz, ds, pz, ps = (np.asarray(t) for t in gradients(z, s))
    z, r, u, s, w = (np.asarray(a, "float64") for a in (z, r, u, s, w))
    close = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, z * s, **close)
    np.testing.assert_allclose(dz, r * s, **close)
    np.testing.assert_allclose(ds, np.sum(r * z, axis=0), **close)
    np.testing.assert_allclose(pz, r * w, **close)
    np.testing.assert_allclose(ps, np.sum(u * r, axis=0), **close)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_xla_magnitude_gradient_under_mixed_precision(policy):
    # The XLA path accumulates the gradient of g in float32 and hands it
    # back in the variable dtype; compare with the float64 formula
    # dL/dg = sum_b(r * z) / ||v||, to the precision of the compute dtype.
    rng = np.random.default_rng(7)
    v = rng.normal(size=(16, 3)).astype("float32")
    x = rng.normal(size=(64, 16)).astype("float32")
    r = rng.normal(size=(64, 3)).astype("float32")
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = WeightNorm(keras.layers.Dense(3, use_bias=False))
        layer.build((None, 16))
        layer.direction.assign(v)

        @tf.function(jit_compile=True)
        def magnitude_gradient(x):
            with tf.GradientTape() as tape:
                y = tf.cast(layer(x), tf.float32)
                loss = tf.reduce_sum(y * r)
            return tape.gradient(loss, layer.magnitude.value)

        dg = magnitude_gradient(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert dg.dtype == tf.float32
    v64 = v.astype("float64")
    norms = np.linalg.norm(v64, axis=0)
    terms = r * (x @ v64)
    expected = np.sum(terms, axis=0) / norms
    # Rounding x, v and the upstream gradient to the compute dtype errs by
    # about its epsilon per term: allow twice that on the sum of |terms|.
    epsilon = {"mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}[policy]
    bound = 2 * epsilon * np.sum(np.abs(terms), axis=0) / norms
    assert np.all(np.abs(np.asarray(dg) - expected) <= bound)


@pytest.mark.parametrize("rows", [1, 9, 16])
def test_halving_column_squares_has_exact_second_derivative(rows):
    # f(v) = sum_j w_j * sum_i v_ij^2 has gradient 2 w v and Hessian-vector
    # product 2 w u (by hand): the hand-written gradient of the XLA path
    # must itself differentiate correctly (the Hessian diagnostics do).
    rng = np.random.default_rng(rows)
    v = tf.constant(rng.normal(size=(rows, 4)).astype("float32"))
    u = tf.constant(rng.normal(size=(rows, 4)).astype("float32"))
    w = tf.constant(rng.normal(size=4).astype("float32"))

    @tf.function(jit_compile=True)
    def sums_gradient_and_hvp(v):
        with tf.GradientTape() as outer:
            outer.watch(v)
            with tf.GradientTape() as inner:
                inner.watch(v)
                sums = weight_norm._column_squares_by_halving(v)
                value = tf.reduce_sum(w * sums)
            gradient = inner.gradient(value, v)
            projected = tf.reduce_sum(gradient * u)
        return sums, gradient, outer.gradient(projected, v)

    sums, gradient, hvp = (np.asarray(t) for t in sums_gradient_and_hvp(v))
    v, u, w = np.asarray(v), np.asarray(u), np.asarray(w)
    np.testing.assert_allclose(sums, np.sum(v**2, axis=0), rtol=1e-5)
    np.testing.assert_allclose(gradient, 2 * w * v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hvp, 2 * w * u, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "policy, atol",
    [("mixed_float16", 2e-2), ("mixed_bfloat16", 1e-1)],
)
def test_mixed_precision(policy, atol):
    x, y = _toy_data()
    reference = _mlp(seed=5)
    expected = reference(x)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _mlp(seed=5)
        model.set_weights(reference.get_weights())
        wrapped = model.get_layer("wn0")
        assert wrapped.magnitude.dtype == "float32"
        assert wrapped.direction.dtype == "float32"
        out = model(x)
        assert wrapped.compute_dtype == policy.split("_")[1]
        # The float32 inputs are cast like any Keras layer's.
        assert wrapped(x).dtype == wrapped.compute_dtype
        np.testing.assert_allclose(
            np.asarray(out, "float32"), expected, atol=atol, rtol=atol
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mirrored_strategy_fit_keeps_replicas_identical():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPU devices")
    # Collective all-reduce keys are process-wide, and another strategy
    # that trained earlier in this process can collide with them; reducing
    # on one device sidesteps that and still keeps two replicas.
    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )
    x, y = _toy_data()
    with strategy.scope():
        model = _mlp(seed=2)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    magnitude = model.get_layer("wn0").magnitude
    replicas = [np.asarray(v) for v in magnitude.value.values]
    assert len(replicas) == 2
    np.testing.assert_array_equal(replicas[0], replicas[1])


def test_keras_file_round_trip(tmp_path):
    model = _mlp(seed=4)
    x, _ = _toy_data()
    model.get_layer("wn0").magnitude.assign(
        np.linspace(0.5, 1.5, 16).astype("float32")
    )
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("wn0"), WeightNorm)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_config_round_trip():
    wrapped = WeightNorm(
        keras.layers.Conv2D(3, 2, activation="relu"), name="conv_wn"
    )
    config = wrapped.get_config()
    assert config["name"] == "conv_wn"
    assert config["layer"]["class_name"] == "Conv2D"
    clone = WeightNorm.from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(wrapped)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(restored, WeightNorm)
    assert restored.layer.filters == 3


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    h = WeightNorm(keras.layers.Conv2D(4, 3, activation="relu"))(inputs)
    h = WeightNorm(keras.layers.DepthwiseConv2D(3))(h)
    h = WeightNorm(keras.layers.Conv2DTranspose(2, 3, strides=2))(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, WeightNorm(keras.layers.Dense(3))(h))


def test_fold_weight_norm_functional():
    model = _conv_model()
    for layer in model.layers:
        if isinstance(layer, WeightNorm):
            size = layer.magnitude.shape[0]
            layer.magnitude.assign(np.linspace(0.5, 2.0, size))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    folded = fold_weight_norm(model)
    assert not any(isinstance(layer, WeightNorm) for layer in folded.layers)
    np.testing.assert_allclose(folded(x), model(x), atol=1e-4, rtol=1e-4)
    # Folded kernels equal the numpy effective kernels.
    conv = folded.layers[1]
    wrapped = model.layers[1]
    expected = _numpy_effective_kernel(
        np.asarray(wrapped.direction), np.asarray(wrapped.magnitude), (-1,)
    )
    np.testing.assert_allclose(conv.kernel, expected, rtol=RTOL, atol=ATOL)
    assert len(folded.weights) < len(model.weights)


def test_fold_weight_norm_sequential_and_nested():
    inner = keras.Sequential(
        [keras.Input((6,)), WeightNorm(keras.layers.Dense(5))]
    )
    inputs = keras.Input((6,))
    outputs = WeightNorm(keras.layers.Dense(2))(inner(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    folded = fold_weight_norm(model)
    names = [type(layer).__name__ for layer in folded._flatten_layers()]
    assert "WeightNorm" not in names
    np.testing.assert_allclose(folded(x), model(x), atol=1e-5)


def test_fold_weight_norm_rejects_subclassed_models(subclassed_wn_model):
    with pytest.raises(ValueError, match="functional or Sequential"):
        fold_weight_norm(subclassed_wn_model)


def test_fold_weight_norm_rejects_unbuilt_models():
    model = keras.Sequential([WeightNorm(keras.layers.Dense(2))])
    with pytest.raises(ValueError, match="not built"):
        fold_weight_norm(model)


def test_package_exports():
    assert wn_keras.WeightNorm is WeightNorm
    assert callable(wn_keras.fold_weight_norm)


def test_xla_magnitude_gradient_keeps_float64():
    # A float64 layer's gradient of g must not pass through float32 on the
    # XLA path: dL/dg = sum_b(r * z) / ||v|| to float64 precision.
    rng = np.random.default_rng(11)
    v = rng.normal(size=(16, 3))
    x = rng.normal(size=(256, 16))
    r = rng.normal(size=(256, 3))
    layer = WeightNorm(keras.layers.Dense(3, use_bias=False, dtype="float64"))
    layer.build((None, 16))
    layer.direction.assign(v)

    @tf.function(jit_compile=True)
    def magnitude_gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) * r)
        return tape.gradient(loss, layer.magnitude.value)

    dg = magnitude_gradient(tf.constant(x))
    assert dg.dtype == tf.float64
    expected = np.sum(r * (x @ v), axis=0) / np.linalg.norm(v, axis=0)
    np.testing.assert_allclose(dg, expected, rtol=1e-12, atol=1e-12)

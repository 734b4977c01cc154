"""Tests for wn_keras.data: splits, normalization, augmentation, TFDS."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from wn_keras import data


def _batches_to_numpy(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


# Digits ----------------------------------------------------------------------


def test_digits_split_sizes_and_disjointness():
    from sklearn.datasets import load_digits

    arrays = data.digits_arrays(val_fraction=0.1)
    # 1,797 images: 359 test (20 %), 144 validation (10 % of 1,438).
    assert len(arrays["y_test"]) == 359
    assert len(arrays["y_validation"]) == 144
    assert len(arrays["y_train"]) == 1797 - 359 - 144
    # Every original image lands in exactly one split.
    raw = load_digits().images.reshape(1797, 64)
    keys = {row.tobytes(): i for i, row in enumerate(raw)}
    found = []
    for split in ("train", "validation", "test"):
        pixels = (arrays[f"x_{split}"].reshape(-1, 64) + 0.5) * 16
        found.append({keys[row.astype(raw.dtype).tobytes()] for row in pixels})
    assert sum(len(s) for s in found) == 1797
    assert set.union(*found) == set(range(1797))


def test_digits_normalization_and_labels():
    from sklearn.datasets import load_digits

    digits = load_digits()
    arrays = data.digits_arrays(0.1)
    x = arrays["x_train"]
    assert x.shape[1:] == (8, 8, 1) and x.dtype == np.float32
    assert x.min() == -0.5 and x.max() == 0.5
    # Pixel p maps to p / 16 - 0.5: match a training image to its label.
    index = np.flatnonzero(
        (digits.images == (x[0, :, :, 0] + 0.5) * 16).all(axis=(1, 2))
    )
    assert digits.target[index[0]] == arrays["y_train"][0]


def test_digits_split_is_deterministic():
    first, second = data.digits_arrays(0.2), data.digits_arrays(0.2)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert len(first["y_validation"]) == round(0.2 * (1797 - 359))


def test_load_digits_pipelines():
    splits = data.load("digits", batch_size=100, val_fraction=0.1, seed=3)
    assert splits.input_shape == (8, 8, 1) and splits.num_classes == 10
    x, y = next(iter(splits.train))
    assert x.shape == (100, 8, 8, 1) and y.dtype == tf.int32
    x_val, y_val = _batches_to_numpy(splits.validation)
    arrays = data.digits_arrays(0.1)
    np.testing.assert_array_equal(x_val, arrays["x_validation"])
    np.testing.assert_array_equal(y_val, arrays["y_validation"])
    assert splits.num_train == len(arrays["y_train"])
    assert data.steps_per_epoch(splits.num_train, 100) == 12


def test_synthetic_labels_follow_teacher():
    arrays = data.synthetic_arrays((4, 4, 2), num_classes=3, seed=7)
    x, y = arrays["x_train"], arrays["y_train"]
    assert x.shape == (data.SYNTHETIC_SIZES["train"], 4, 4, 2)
    # A linear least-squares fit on one-hot labels separates them well
    # when a linear teacher made them; random labels would not allow it.
    flat = x.reshape(len(x), -1)
    weights = np.linalg.lstsq(flat, np.eye(3)[y], rcond=None)[0]
    assert np.mean(np.argmax(flat @ weights, 1) == y) > 0.8
    assert len(np.unique(y)) == 3


# Augmentation ----------------------------------------------------------------


def _numpy_pad_crop(image, offset_y, offset_x, padding):
    padded = np.pad(image, [(padding, padding), (padding, padding), (0, 0)])
    height, width = image.shape[:2]
    return padded[offset_y : offset_y + height, offset_x : offset_x + width]


@pytest.mark.parametrize("offsets", [(0, 0), (4, 4), (8, 1), (3, 7)])
def test_pad_and_crop_matches_numpy(offsets):
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    got = data.pad_and_crop(tf.constant(image), *offsets, padding=4).numpy()
    assert got.shape == image.shape
    np.testing.assert_array_equal(got, _numpy_pad_crop(image, *offsets, 4))


def test_random_pad_and_crop_keeps_shape_and_is_a_shifted_window():
    image = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    tf.random.set_seed(0)
    for _ in range(10):
        got = data.random_pad_and_crop(tf.constant(image)).numpy()
        assert got.shape == image.shape
        matches = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if np.array_equal(got, _numpy_pad_crop(image, dy, dx, 4))
        ]
        assert matches


def test_flip_is_a_mirror():
    image = np.random.default_rng(2).random((32, 32, 3)).astype(np.float32)
    flipped = tf.image.flip_left_right(tf.constant(image)).numpy()
    np.testing.assert_array_equal(flipped, image[:, ::-1, :])


@pytest.mark.parametrize(
    "center", [(16, 16), (0, 0), (31, 31), (8, 8), (2, 29), (20, 5)]
)
def test_cutout_zeroes_a_clipped_16x16_patch(center):
    image = 1.0 + np.random.default_rng(3).random((32, 32, 3))
    image = image.astype(np.float32)
    got = data.cutout(tf.constant(image), *center, size=16).numpy()
    want = image.copy()
    top, left = center[0] - 8, center[1] - 8
    want[max(top, 0) : top + 16, max(left, 0) : left + 16] = 0.0
    np.testing.assert_array_equal(got, want)
    rows = min(top + 16, 32) - max(top, 0)
    cols = min(left + 16, 32) - max(left, 0)
    assert np.sum(got == 0) == rows * cols * 3


def test_random_cutout_zeroes_at_most_one_square():
    image = tf.ones((32, 32, 3))
    tf.random.set_seed(1)
    for _ in range(10):
        hole = data.random_cutout(image).numpy()[:, :, 0] == 0
        rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
        assert 1 <= len(rows) <= 16 and 1 <= len(cols) <= 16
        assert hole.sum() == len(rows) * len(cols)  # a filled rectangle


# TFDS through mocks ----------------------------------------------------------

_MOCK_SIZES = {"train": 100, "test": 30}
_MOCK_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


def _mock_images(name, split):
    """Deterministic fake images; the value of pixel 0 is the index."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    shape = _MOCK_SHAPES[name]
    images = rng.integers(0, 256, (_MOCK_SIZES[split], *shape), np.uint8)
    images[:, 0, 0, 0] = np.arange(_MOCK_SIZES[split])
    labels = np.arange(_MOCK_SIZES[split]) % 10
    return images, labels


def _fake_as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    """Serves `_mock_images`, honouring the percent slices of `split`."""
    match = re.fullmatch(r"(train|test)(?:\[(\d*)%?:(\d*)%?\])?", str(split))
    base, start, stop = match.groups()
    images, labels = _mock_images(self.name, base)
    size = len(labels)
    start = int(start) * size // 100 if start else 0
    stop = int(stop) * size // 100 if stop else size
    return tf.data.Dataset.from_tensor_slices(
        {"image": images[start:stop], "label": labels[start:stop]}
    )


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_tfds_split_sizes_shapes_and_normalization(name):
    with tfds.testing.mock_data(as_dataset_fn=_fake_as_dataset):
        splits = data.load(name, batch_size=10, val_fraction=0.2, seed=0)
    assert (splits.num_train, splits.num_validation, splits.num_test) == (
        80,
        20,
        30,
    )
    assert splits.input_shape == _MOCK_SHAPES[name]
    images, labels = _mock_images(name, "train")
    mean = np.array(data.CHANNEL_MEAN[name], np.float32)
    std = np.array(data.CHANNEL_STD[name], np.float32)
    x_val, y_val = _batches_to_numpy(splits.validation)
    # Validation is the last 20 % of train, normalized, not augmented.
    np.testing.assert_allclose(
        x_val, (images[80:] / 255.0 - mean) / std, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(y_val, labels[80:])
    x_test, _ = _batches_to_numpy(splits.test)
    test_images, _ = _mock_images(name, "test")
    np.testing.assert_allclose(
        x_test, (test_images / 255.0 - mean) / std, rtol=1e-5, atol=1e-5
    )
    x, y = next(iter(splits.train))
    assert x.shape == (10, *_MOCK_SHAPES[name]) and y.dtype == tf.int32
    # Training examples come from the first 80 %: pixel 0 holds the index.
    pixel = np.round((x.numpy()[:, 0, 0, 0] * std[0] + mean[0]) * 255)
    if name == "mnist":  # no augmentation: an exact index into train
        assert set(pixel.astype(int)) <= set(range(80))


def test_tfds_cifar_training_is_augmented():
    with tfds.testing.mock_data(as_dataset_fn=_fake_as_dataset):
        splits = data.load("cifar10", batch_size=80, seed=0, cutout=True)
    x, _ = next(iter(splits.train))
    # The cutout holes are exact zeros after normalization; a normalized
    # pixel is zero only by such a hole.
    zero_pixels = np.all(x.numpy() == 0, axis=-1).sum(axis=(1, 2))
    assert np.all(zero_pixels >= 64) and np.all(zero_pixels <= 256)


def test_tfds_split_names():
    assert data.tfds_split_names(0.1) == ("train[:90%]", "train[90%:]", "test")
    assert data.tfds_split_names(0.05)[1] == "train[95%:]"


def test_missing_tfds_data_gives_clear_error(tmp_path):
    with pytest.raises(
        data.DataNotFoundError,
        match=r"No prepared copy of TFDS data set 'mnist'.*tfds build mnist"
        r".*digits",
    ):
        data.load("mnist", batch_size=8, data_dir=str(tmp_path))


def test_failed_download_gives_clear_error(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", offline
    )
    with pytest.raises(
        data.DataNotFoundError,
        match=r"Downloading TFDS data set 'cifar10' .* failed \(Connection"
        r"Error: no route to host\).*digits",
    ):
        data.load("cifar10", 8, data_dir=str(tmp_path), download=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="imagenet"), r"name must be one of .*'imagenet'"),
        (dict(batch_size=0), r"batch_size must be a positive.*=0"),
        (dict(val_fraction=0.0), r"val_fraction .* strictly between.*=0\.0"),
        (dict(val_fraction=1.5), r"val_fraction .* strictly between.*=1\.5"),
        (dict(cutout=True), r"cutout is a CIFAR augmentation.*'digits'"),
        (dict(batch_size=5000), r"batch_size must not exceed the 1294"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = dict(name="digits", batch_size=8) | kwargs
    with pytest.raises(ValueError, match=match):
        data.load(**arguments)


def test_tfds_val_fraction_must_be_whole_percent():
    with pytest.raises(ValueError, match=r"whole number of percent.*0\.125"):
        data.tfds_split_names(0.125)


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match=r"num_classes must be at least 2"):
        data.synthetic_arrays(num_classes=1)
    with pytest.raises(ValueError, match=r"input_shape must list positive"):
        data.synthetic_arrays(input_shape=(8, 0))

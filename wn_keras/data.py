"""Data sets and input pipelines of the paper's experiments.

`load` returns batched `tf.data` pipelines for training, validation and
test, split and normalized the same way every time:

- "mnist", "cifar10", "cifar100" come from TensorFlow Datasets (TFDS).
  The first `1 - val_fraction` of the TFDS training split (in its stored,
  deterministic order) trains, the rest validates, through TFDS percent
  slices such as `train[:90%]` / `train[90%:]`; the TFDS test split tests.
  Pixels are scaled to [0, 1] and normalized per channel with the
  published mean and standard deviation of each data set's training
  images (`CHANNEL_MEAN`, `CHANNEL_STD`). CIFAR training images are
  augmented: zero-padded by 4 pixels (before normalization, i.e. black),
  randomly cropped back, flipped left-right with probability 1/2 and,
  with `cutout=True`, given one 16x16 hole of zeros (after normalization)
  centred at a uniformly drawn pixel and clipped at the border.
- "digits" is scikit-learn's bundled 8x8 digits (1,797 images, no
  download): a permutation with the fixed seed `DIGITS_SPLIT_SEED` puts
  `DIGITS_TEST_FRACTION` of the images in test and `val_fraction` of the
  rest in validation. Pixels 0..16 become `p / 16 - 0.5`, shape (8, 8, 1).
- "synthetic" is Gaussian inputs labelled by a fixed random linear teacher
  (`argmax(x W)`), so the labels can be learned; for smoke tests.

Training pipelines shuffle, repeat without end and drop the last partial
batch (every step sees `batch_size` examples, so run `fit` with
`steps_per_epoch`); evaluation pipelines keep every example.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

DATASETS = ("mnist", "cifar10", "cifar100", "digits", "synthetic")
TFDS_DATASETS = ("mnist", "cifar10", "cifar100")

# Published per-channel statistics of the training images, pixels in [0, 1].
CHANNEL_MEAN = {
    "mnist": (0.1307,),
    "cifar10": (0.4914, 0.4822, 0.4465),
    "cifar100": (0.5071, 0.4865, 0.4409),
}
CHANNEL_STD = {
    "mnist": (0.3081,),
    "cifar10": (0.2470, 0.2435, 0.2616),
    "cifar100": (0.2673, 0.2564, 0.2762),
}
NUM_CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100, "digits": 10}
IMAGE_SHAPE = {
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "cifar100": (32, 32, 3),
    "digits": (8, 8, 1),
}

CROP_PADDING = 4
CUTOUT_SIZE = 16
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
DIGITS_MAX_PIXEL = 16.0
SYNTHETIC_SIZES = {"train": 512, "validation": 128, "test": 128}
SYNTHETIC_SEED = 1234


class DataNotFoundError(RuntimeError):
    """A TFDS data set is not prepared locally and cannot be downloaded."""


@dataclasses.dataclass
class Splits:
    """The three pipelines of a data set and what a model needs to know.

    Attributes:
        train: Batched training pipeline, shuffled, augmented where the
            data set calls for it, repeated without end.
        validation: Batched validation pipeline, one pass.
        test: Batched test pipeline, one pass.
        input_shape: Shape of one example, e.g. `(8, 8, 1)`.
        num_classes: Number of labels.
        num_train: Number of training examples (one epoch).
        num_validation: Number of validation examples.
        num_test: Number of test examples.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    num_train: int
    num_validation: int
    num_test: int


def _check_val_fraction(val_fraction: float) -> None:
    if not 0 < val_fraction < 1:
        raise ValueError(
            "val_fraction is the share of the training set held out for "
            "validation and must lie strictly between 0 and 1 (the paper "
            f"uses 0.1); received val_fraction={val_fraction!r}."
        )


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(
            "batch_size must be a positive number of examples; received "
            f"batch_size={batch_size!r}."
        )


# Augmentation ---------------------------------------------------------------


def pad_and_crop(
    image: tf.Tensor, offset_y, offset_x, padding: int = CROP_PADDING
) -> tf.Tensor:
    """Zero-pads an image on every side and crops it back to its size.

    Args:
        image: A `(height, width, channels)` image.
        offset_y: Row of the padded image where the crop starts, in
            `[0, 2 * padding]`; `padding` gives the original image.
        offset_x: Column where the crop starts, in `[0, 2 * padding]`.
        padding: Pixels of zeros added on each side.

    Returns:
        The crop, with the shape of `image`.

    Example:

    >>> image = tf.ones((4, 4, 1))
    >>> float(tf.reduce_sum(pad_and_crop(image, 0, 0, padding=1)))
    9.0
    """
    height, width = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.slice(padded, [offset_y, offset_x, 0], [height, width, -1])


def random_pad_and_crop(
    image: tf.Tensor, padding: int = CROP_PADDING
) -> tf.Tensor:
    """`pad_and_crop` at offsets drawn uniformly from `[0, 2 * padding]`."""
    offsets = tf.random.uniform([2], 0, 2 * padding + 1, dtype=tf.int32)
    return pad_and_crop(image, offsets[0], offsets[1], padding)


def cutout(
    image: tf.Tensor, center_y, center_x, size: int = CUTOUT_SIZE
) -> tf.Tensor:
    """Sets a `size` x `size` square of an image to zero.

    The square covers rows `[center_y - size // 2, center_y - size // 2 +
    size)` and the same for columns, clipped at the image border, so near
    an edge fewer pixels are zeroed.

    Args:
        image: A `(height, width, channels)` image.
        center_y: Row of the square's centre.
        center_x: Column of the square's centre.
        size: Side of the square in pixels.

    Returns:
        The image with the square zeroed in every channel.

    Example:

    >>> hole = cutout(tf.ones((32, 32, 3)), 0, 0)
    >>> int(tf.reduce_sum(1 - hole))  # an 8x8 corner in 3 channels
    192
    """
    height, width = image.shape[0], image.shape[1]
    top = center_y - size // 2
    left = center_x - size // 2
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (
        (rows >= top)
        & (rows < top + size)
        & (cols >= left)
        & (cols < left + size)
    )
    keep = tf.cast(tf.logical_not(inside), image.dtype)[:, :, None]
    return image * keep


def random_cutout(image: tf.Tensor, size: int = CUTOUT_SIZE) -> tf.Tensor:
    """`cutout` centred at a pixel drawn uniformly from the image."""
    center_y = tf.random.uniform([], 0, image.shape[0], dtype=tf.int32)
    center_x = tf.random.uniform([], 0, image.shape[1], dtype=tf.int32)
    return cutout(image, center_y, center_x, size)


def normalize(image: tf.Tensor, name: str) -> tf.Tensor:
    """Scales uint8 pixels to [0, 1] and standardizes each channel.

    Args:
        image: Image with pixel values 0..255 (any dtype).
        name: A TFDS data set name, a key of `CHANNEL_MEAN`.

    Returns:
        `(image / 255 - CHANNEL_MEAN[name]) / CHANNEL_STD[name]` as float32.
    """
    scaled = tf.cast(image, tf.float32) / 255.0
    return (scaled - CHANNEL_MEAN[name]) / CHANNEL_STD[name]


# Arrays: digits and synthetic ----------------------------------------------


def digits_arrays(val_fraction: float = 0.1) -> dict[str, np.ndarray]:
    """Splits scikit-learn's 8x8 digits into train, validation and test.

    Args:
        val_fraction: Share of the non-test images held out for validation.

    Returns:
        Dict with `x_train`, `y_train`, `x_validation`, `y_validation`,
        `x_test`, `y_test`; images float32 `(n, 8, 8, 1)` in [-0.5, 0.5],
        labels int32.

    Raises:
        ValueError: If `val_fraction` is not strictly between 0 and 1.

    Example:

    >>> arrays = digits_arrays(0.1)
    >>> arrays["x_test"].shape
    (359, 8, 8, 1)
    """
    from sklearn.datasets import load_digits

    _check_val_fraction(val_fraction)
    digits = load_digits()
    images = digits.images.astype(np.float32) / DIGITS_MAX_PIXEL - 0.5
    images = images[..., None]
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    num_test = round(DIGITS_TEST_FRACTION * len(labels))
    test, rest = order[:num_test], order[num_test:]
    num_validation = round(val_fraction * len(rest))
    validation, train = rest[:num_validation], rest[num_validation:]
    arrays = {}
    for split, index in [
        ("train", train),
        ("validation", validation),
        ("test", test),
    ]:
        arrays[f"x_{split}"] = images[index]
        arrays[f"y_{split}"] = labels[index]
    return arrays


def synthetic_arrays(
    input_shape: tuple[int, ...] = (8, 8, 1),
    num_classes: int = 10,
    seed: int = SYNTHETIC_SEED,
) -> dict[str, np.ndarray]:
    """Gaussian inputs labelled by a fixed random linear teacher.

    Args:
        input_shape: Shape of one example.
        num_classes: Number of labels, at least 2.
        seed: Seed of the inputs and of the teacher.

    Returns:
        Dict like `digits_arrays`, with `SYNTHETIC_SIZES` examples per
        split; `y = argmax(flatten(x) @ teacher)`.

    Raises:
        ValueError: If `num_classes < 2` or a dimension is not positive.
    """
    if num_classes < 2:
        raise ValueError(
            "num_classes must be at least 2; received "
            f"num_classes={num_classes!r}."
        )
    if not input_shape or min(input_shape) < 1:
        raise ValueError(
            "input_shape must list positive dimensions, e.g. (8, 8, 1); "
            f"received input_shape={tuple(input_shape)!r}."
        )
    rng = np.random.default_rng(seed)
    dim = int(np.prod(input_shape))
    teacher = rng.standard_normal((dim, num_classes)).astype(np.float32)
    arrays = {}
    for split, size in SYNTHETIC_SIZES.items():
        x = rng.standard_normal((size, *input_shape)).astype(np.float32)
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = np.argmax(
            x.reshape(size, dim) @ teacher, axis=1
        ).astype(np.int32)
    return arrays


def _array_splits(
    arrays: dict[str, np.ndarray],
    num_classes: int,
    batch_size: int,
    seed: int | None,
) -> Splits:
    def evaluation(split):
        return (
            tf.data.Dataset.from_tensor_slices(
                (arrays[f"x_{split}"], arrays[f"y_{split}"])
            )
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    num_train = len(arrays["y_train"])
    train = (
        tf.data.Dataset.from_tensor_slices(
            (arrays["x_train"], arrays["y_train"])
        )
        .shuffle(num_train, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return Splits(
        train=train,
        validation=evaluation("validation"),
        test=evaluation("test"),
        input_shape=tuple(arrays["x_train"].shape[1:]),
        num_classes=num_classes,
        num_train=num_train,
        num_validation=len(arrays["y_validation"]),
        num_test=len(arrays["y_test"]),
    )


# TFDS ------------------------------------------------------------------------


def tfds_split_names(val_fraction: float) -> tuple[str, str, str]:
    """TFDS split strings for training, validation and test.

    Args:
        val_fraction: Share of the TFDS training split held out, a whole
            number of percent.

    Returns:
        E.g. `("train[:90%]", "train[90%:]", "test")` for 0.1.

    Raises:
        ValueError: If `val_fraction` is not in (0, 1) or not a whole
            percentage.
    """
    _check_val_fraction(val_fraction)
    percent = val_fraction * 100
    if abs(percent - round(percent)) > 1e-9:
        raise ValueError(
            "val_fraction must be a whole number of percent for TFDS data "
            "sets (they are split with percent slices such as "
            f"'train[:90%]'); received val_fraction={val_fraction!r}. Use "
            "e.g. 0.1 or 0.05."
        )
    cut = 100 - round(percent)
    return f"train[:{cut}%]", f"train[{cut}%:]", "test"


def _count(dataset: tf.data.Dataset) -> int:
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(0, lambda count, _: count + 1))


def _load_tfds(
    name: str, val_fraction: float, data_dir: str | None, download: bool
) -> list[tf.data.Dataset]:
    import tensorflow_datasets as tfds

    split_names = tfds_split_names(val_fraction)
    builder = tfds.builder(name, data_dir=data_dir)
    how_to = (
        f"Prepare it on a machine with network access (`tfds build {name} "
        "--data_dir DIR`, or load with download=True, i.e. train.py "
        "--download) and pass that directory as data_dir (--data_dir), or "
        "use the 'digits' data set, which ships with scikit-learn."
    )
    if download:
        try:
            builder.download_and_prepare()
        except Exception as error:  # Network and disk errors vary widely.
            raise DataNotFoundError(
                f"Downloading TFDS data set {name!r} into "
                f"{builder.data_dir} failed ({type(error).__name__}: "
                f"{error}). {how_to}"
            ) from error
    try:
        return [
            builder.as_dataset(split=split, as_supervised=True)
            for split in split_names
        ]
    except AssertionError as error:  # TFDS's "could not find data".
        raise DataNotFoundError(
            f"No prepared copy of TFDS data set {name!r} was found (looked "
            f"in {builder.data_dir}). {how_to}"
        ) from error


def _tfds_splits(
    name: str,
    batch_size: int,
    val_fraction: float,
    data_dir: str | None,
    download: bool,
    cutout_enabled: bool,
    seed: int | None,
) -> Splits:
    train_raw, validation_raw, test_raw = _load_tfds(
        name, val_fraction, data_dir, download
    )
    augment = name.startswith("cifar")

    def train_map(image, label):
        image = tf.cast(image, tf.float32)
        if augment:
            image = random_pad_and_crop(image)
            image = tf.image.random_flip_left_right(image)
        image = normalize(image, name)
        if cutout_enabled:
            image = random_cutout(image)
        return image, tf.cast(label, tf.int32)

    def evaluation_map(image, label):
        return normalize(image, name), tf.cast(label, tf.int32)

    def evaluation(raw):
        return (
            raw.cache()
            .map(evaluation_map, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )

    num_train = _count(train_raw)
    # Raw uint8 images are cached (about 150 MB for CIFAR), augmentation
    # runs fresh on every pass.
    train = (
        train_raw.cache()
        .shuffle(num_train, seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .map(train_map, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return Splits(
        train=train,
        validation=evaluation(validation_raw),
        test=evaluation(test_raw),
        input_shape=IMAGE_SHAPE[name],
        num_classes=NUM_CLASSES[name],
        num_train=num_train,
        num_validation=_count(validation_raw),
        num_test=_count(test_raw),
    )


def load(
    name: str,
    batch_size: int,
    val_fraction: float = 0.1,
    *,
    data_dir: str | None = None,
    download: bool = False,
    cutout: bool = False,
    seed: int | None = None,
    synthetic_shape: tuple[int, ...] = (8, 8, 1),
    synthetic_classes: int = 10,
) -> Splits:
    """Builds the training, validation and test pipelines of a data set.

    Args:
        name: One of `DATASETS`.
        batch_size: Examples per batch (the global batch under a
            distribution strategy).
        val_fraction: Share of the training set held out for validation.
        data_dir: TFDS data directory; None uses TFDS's default.
        download: For TFDS data sets, download and prepare when missing.
        cutout: Add one 16x16 cutout hole to each CIFAR training image.
        seed: Seed of the training shuffle; None draws one.
        synthetic_shape: Example shape of the "synthetic" data set.
        synthetic_classes: Number of labels of the "synthetic" data set.

    Returns:
        A `Splits`.

    Raises:
        ValueError: For an unknown `name`, a bad `batch_size` or
            `val_fraction`, or `cutout` on a data set other than CIFAR.
        DataNotFoundError: If a TFDS data set is not prepared locally.

    Example:

    >>> splits = load("digits", batch_size=32)
    >>> splits.input_shape, splits.num_classes
    ((8, 8, 1), 10)
    """
    if name not in DATASETS:
        raise ValueError(
            f"name must be one of {DATASETS}; received name={name!r}."
        )
    _check_batch_size(batch_size)
    _check_val_fraction(val_fraction)
    if cutout and not name.startswith("cifar"):
        raise ValueError(
            "cutout is a CIFAR augmentation (a 16x16 hole in a 32x32 "
            f"image); received cutout=True with name={name!r}. Drop cutout "
            "or use cifar10 / cifar100."
        )
    if name in TFDS_DATASETS:
        splits = _tfds_splits(
            name, batch_size, val_fraction, data_dir, download, cutout, seed
        )
    elif name == "digits":
        splits = _array_splits(
            digits_arrays(val_fraction), NUM_CLASSES[name], batch_size, seed
        )
    else:
        arrays = synthetic_arrays(tuple(synthetic_shape), synthetic_classes)
        splits = _array_splits(arrays, synthetic_classes, batch_size, seed)
    if splits.num_train < batch_size:
        raise ValueError(
            f"batch_size must not exceed the {splits.num_train} training "
            f"examples of {name!r} (the training pipeline drops partial "
            f"batches); received batch_size={batch_size}."
        )
    return splits


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full batches in one pass over `num_train` examples (at least 1)."""
    return max(1, math.floor(num_train / batch_size))

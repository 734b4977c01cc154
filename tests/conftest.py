"""Test set-up shared by the whole suite.

The CPU is split into two logical devices before TensorFlow initializes
its runtime, so that `tf.distribute.MirroredStrategy` tests run with two
replicas on a machine without accelerators.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 2

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS,
    )
except RuntimeError:
    # The runtime was initialized already (e.g. by a plugin); tests that
    # need two devices skip themselves when they find fewer.
    pass


@pytest.fixture
def subclassed_wn_model():
    """A built subclassed model holding one WeightNorm layer (3 -> 2)."""
    from wn_keras import WeightNorm

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = WeightNorm(keras.layers.Dense(2))

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.ones((2, 3), "float32"))
    return net

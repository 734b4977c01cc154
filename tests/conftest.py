"""Test set-up shared by the whole suite.

The CPU is split into two logical devices before TensorFlow initializes
its runtime, so that `tf.distribute.MirroredStrategy` tests run with two
replicas on a machine without accelerators.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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

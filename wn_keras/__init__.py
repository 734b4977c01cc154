"""wn_keras: weight normalization and robust initialization for Keras 3.

- `WeightNorm`: a wrapper layer that re-parameterizes the kernel of a Dense
  or convolution layer as ``w = g * v / ||v||`` (Salimans & Kingma, 2016).
- `ProposedOrthogonal`, `ProposedHe`: the initialization of Arpit, Campos &
  Bengio, "How to Initialize your Network? Robust Initialization for
  WeightNorm & ResNets" (NeurIPS 2019, arXiv:1906.02341).
- `data_dependent_init`: the data-dependent initialization of Salimans &
  Kingma, the baseline the paper compares against.
- `fold_weight_norm`: replaces the wrappers by plain layers for inference.

Submodules: `wn_keras.models` (the paper's MLP, CNN, ResNet and Wide-ResNet
builders), `wn_keras.diagnostics` (signal propagation, Hessian spectral
norm), `wn_keras.data` and `wn_keras.schedules` (the training set-up).
"""

from wn_keras.data_init import data_dependent_init
from wn_keras.initializers import ProposedHe, ProposedOrthogonal
from wn_keras.weight_norm import WeightNorm, fold_weight_norm

__version__ = "0.1.0"

__all__ = [
    "ProposedHe",
    "ProposedOrthogonal",
    "WeightNorm",
    "data_dependent_init",
    "fold_weight_norm",
]

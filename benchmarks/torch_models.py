"""PyTorch peers of the benchmarked MLP and Wide ResNet, for comparison.

Used by ``wn_overhead.py --with_torch`` (only there; PyTorch is not a
dependency of the package). The models mirror what `wn_keras.models`
builds without batch normalization:

- MLP: ``depth`` Linear+ReLU layers of ``width`` units, then a Linear
  classifier;
- WRN-d-k: a 3x3 stem convolution with 16 filters (no ReLU), three stages
  of basic blocks ``h + conv2(relu(conv1(h)))`` with 16k, 32k, 64k filters
  (stride 2 entering stages 2 and 3, a 1x1 projection on the shortcut
  where the shape changes, no ReLU after the addition), global average
  pooling and a Linear classifier.

With ``weight_norm=True`` every hidden layer (not the classifier) is
re-parameterized by `torch.nn.utils.parametrizations.weight_norm` over its
output units (``dim=0``), as our `WeightNorm` wraps every hidden layer.
Images are NCHW, PyTorch's default layout. A training step is forward,
cross-entropy, backward and `torch.optim.SGD` (no momentum).

Run as a script, this module is a worker that ``wn_overhead.py`` starts
in a separate process: TensorFlow and PyTorch in one process keep their
own thread pools, whose waiting threads take cores from each other and
slow both down. The worker reads its model settings as JSON from the
command line, builds the plain and the weight-normalized model, prints
``ready``, then answers each line ``plain`` or ``wn`` on stdin by running
that model's steps and printing ``done <loss>``; an empty line or end of
input stops it. The parent times each request, so the PyTorch samples
are interleaved with the Keras ones like any other variant. The worker is
started with ``OMP_WAIT_POLICY=PASSIVE`` (unless set otherwise): PyTorch's
OpenMP threads otherwise spin while they wait, and on a machine with more
busy processes than cores that made its steps several times slower.
"""

from __future__ import annotations

import json
import sys

import torch
from torch import nn
from torch.nn.utils import parametrizations

WRN_STEM_FILTERS = 16
NUM_STAGES = 3


def _maybe_normalize(module: nn.Module, weight_norm: bool) -> nn.Module:
    if weight_norm:
        return parametrizations.weight_norm(module, name="weight", dim=0)
    return module


class _Block(nn.Module):
    def __init__(self, channels_in, filters, stride, weight_norm):
        super().__init__()
        self.conv1 = _maybe_normalize(
            nn.Conv2d(channels_in, filters, 3, stride, padding=1),
            weight_norm,
        )
        self.conv2 = _maybe_normalize(
            nn.Conv2d(filters, filters, 3, 1, padding=1), weight_norm
        )
        self.shortcut = None
        if stride != 1 or channels_in != filters:
            self.shortcut = _maybe_normalize(
                nn.Conv2d(channels_in, filters, 1, stride), weight_norm
            )

    def forward(self, inputs):
        branch = self.conv2(torch.relu(self.conv1(inputs)))
        shortcut = inputs if self.shortcut is None else self.shortcut(inputs)
        return shortcut + branch


def wide_resnet(depth, width, num_classes, weight_norm) -> nn.Module:
    """WRN-depth-width without batch norm (see the module docstring)."""
    blocks = (depth - 4) // 6
    layers = [
        _maybe_normalize(
            nn.Conv2d(3, WRN_STEM_FILTERS, 3, 1, padding=1), weight_norm
        )
    ]
    channels = WRN_STEM_FILTERS
    for stage in range(NUM_STAGES):
        filters = WRN_STEM_FILTERS * width * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_Block(channels, filters, stride, weight_norm))
            channels = filters
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    ]
    return nn.Sequential(*layers)


def mlp(inputs, width, depth, num_classes, weight_norm) -> nn.Module:
    """``depth`` Linear+ReLU layers, then the classifier."""
    layers = []
    size = inputs
    for _ in range(depth):
        layers += [
            _maybe_normalize(nn.Linear(size, width), weight_norm),
            nn.ReLU(),
        ]
        size = width
    layers.append(nn.Linear(size, num_classes))
    return nn.Sequential(*layers)


class StepRunner:
    """Runs ``steps`` SGD steps on one fixed random batch per call."""

    def __init__(self, model, images, labels, steps, learning_rate):
        self.model = model
        self.images = images
        self.labels = labels
        self.steps = steps
        self.optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
        self.loss_fn = nn.CrossEntropyLoss()
        self.num_params = sum(p.numel() for p in model.parameters())

    def __call__(self) -> float:
        for _ in range(self.steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(self.images), self.labels)
            loss.backward()
            self.optimizer.step()
        return loss.item()


def step_runner(
    *,
    name: str,
    weight_norm: bool,
    batch_size: int,
    mlp_inputs: int,
    mlp_width: int,
    mlp_depth: int,
    wrn_depth: int,
    wrn_width: int,
    image_size: int,
    num_classes: int,
    steps: int,
    learning_rate: float,
    seed: int,
) -> StepRunner:
    """A `StepRunner` for model ``name`` ("mlp" or "wrn")."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if name == "mlp":
        model = mlp(mlp_inputs, mlp_width, mlp_depth, num_classes, weight_norm)
        images = torch.randn(batch_size, mlp_inputs, generator=generator)
    else:
        model = wide_resnet(wrn_depth, wrn_width, num_classes, weight_norm)
        images = torch.randn(
            batch_size, 3, image_size, image_size, generator=generator
        )
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    return StepRunner(model, images, labels, steps, learning_rate)


def _serve(settings: dict) -> None:
    """The worker loop described in the module docstring."""
    runners = {
        normalization: step_runner(
            weight_norm=normalization == "wn", **settings
        )
        for normalization in ("plain", "wn")
    }
    sizes = " ".join(f"{k}={r.num_params}" for k, r in runners.items())
    print(f"ready {sizes}", flush=True)
    for line in sys.stdin:
        request = line.strip()
        if not request:
            break
        loss = runners[request]()
        print(f"done {loss}", flush=True)


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))

"""What the PyTorch sides of shoal's benchmarks share: the bundled MNIST as tensors and the
seed CNN (examples/mnist_cnn.mmd) with the pipeline's node ids as module names."""
import gzip, os, struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = os.path.abspath(os.environ.get('MNIST_DIR', 'data/mnist-10k'))


def load_idx(name):
    """The IDX pair `name` (train or t10k) of DATA: images [n, 1, 28, 28] scaled to [0, 1], labels."""
    with gzip.open(f'{DATA}/{name}-images-idx3-ubyte.gz') as f:
        _, n, h, w = struct.unpack('>IIII', f.read(16))
        x = np.frombuffer(f.read(), np.uint8).reshape(n, 1, h, w)
    with gzip.open(f'{DATA}/{name}-labels-idx1-ubyte.gz') as f:
        _, n = struct.unpack('>II', f.read(8))
        y = np.frombuffer(f.read(), np.uint8)
    return torch.tensor(x, dtype=torch.float32) / 255.0, torch.tensor(y, dtype=torch.long)


class MnistCnn(nn.Module):  # examples/mnist_cnn.mmd
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3)
        self.d1 = nn.Linear(32 * 13 * 13, 64)
        self.d2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2).flatten(1)
        return self.d2(F.relu(self.d1(x)))

#!/usr/bin/env python3
"""Trains a small MNIST CNN in PyTorch on data/mnist-10k and exports it to ONNX: the model that
examples/mnist_onnx_finetune.mmd imports and fine-tunes with shoal's train stage.

    python3 examples/onnx/export_mnist_cnn.py        (writes examples/onnx/mnist_cnn.onnx)

The model takes pixels scaled to [0, 1] ([N,1,28,28] float) and returns logits [N,10]:
conv 3x3 (8 filters) + batchnorm + relu, maxpool 2x2, dropout, flatten, linear 10. One epoch
of Adam (batch 64, seed 0) on the 8,000 training images; the test accuracy on the 2,000 test
images is printed (and is what `shoal run examples/mnist_onnx_finetune.mmd --epochs 0` scores).
"""
import gzip
import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data", "mnist-10k")


def idx(name):
    with gzip.open(os.path.join(DATA, name + ".gz")) as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    torch.manual_seed(0)
    x = torch.from_numpy(idx("train-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
    y = torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
    tx = torch.from_numpy(idx("t10k-images-idx3-ubyte").astype(np.float32) / 255).unsqueeze(1)
    ty = torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))
    model = nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Dropout(0.1), nn.Flatten(), nn.Linear(8 * 13 * 13, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    order = torch.randperm(len(x))
    for start in range(0, len(x), 64):
        i = order[start:start + 64]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(tx).argmax(1) == ty).float().mean().item()
    print(f"test accuracy {acc:.4f}")
    path = os.path.join(HERE, "mnist_cnn.onnx")
    # Eval-mode export without constant folding: the batchnorm and dropout stay ops (shoal
    # trains them in their training forms), the weights keep the state_dict's names.
    torch.onnx.export(model, (tx[:1],), path, input_names=["pixels"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

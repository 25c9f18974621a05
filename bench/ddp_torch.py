#!/usr/bin/env python3
"""PyTorch DistributedDataParallel on the models of bench/ddp_bench.sh, for the same-call
comparison with `shoal run --gpus N`: the same global batch split evenly over the ranks, the
data on the GPU, Adam (eps 1e-7, as shoal), eager mode, NCCL with NVLink multicast off.

  python3 bench/ddp_torch.py --model mnist_cnn --batch 64 --epochs 5 --out r.json            # 1 GPU
  python3 -m torch.distributed.run --nproc_per_node 2 bench/ddp_torch.py --model ... --out r.json

Writes (rank 0) JSON: world_size, global batch, per-epoch seconds and losses, steps, and
samples_per_s over the epochs after the first (warm-up)."""
import argparse, json, os, time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from torch_common import DATA, MnistCnn, load_idx  # noqa: E402 (bench/ is the script's folder)


class WideCnn(nn.Module):  # bench/ddp_wide_cnn.mmd
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 64, 3, padding=1)
        self.c2 = nn.Conv2d(64, 128, 3, padding=1)
        self.c3 = nn.Conv2d(128, 128, 3, padding=1)
        self.d1 = nn.Linear(128 * 7 * 7, 256)
        self.d2 = nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x)))), 2)
        x = F.max_pool2d(F.relu(self.c3(x)), 2).flatten(1)
        return self.d2(F.relu(self.d1(x)))


class WideMlp(nn.Module):  # bench/ddp_wide_mlp.mmd
    def __init__(self):
        super().__init__()
        self.d1, self.d2, self.d3 = nn.Linear(784, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 4096)
        self.d4 = nn.Linear(4096, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.d4(F.relu(self.d3(F.relu(self.d2(F.relu(self.d1(x)))))))


MODELS = {'mnist_cnn': MnistCnn, 'wide_cnn': WideCnn, 'wide_mlp': WideMlp}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='mnist_cnn', choices=sorted(MODELS))
    ap.add_argument('--batch', type=int, default=64, help='global batch')
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    os.environ.setdefault('NCCL_NVLS_ENABLE', '0')
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    torch.cuda.set_device(local)
    dev = torch.device('cuda', local)
    if world > 1:
        dist.init_process_group('nccl', device_id=dev)
    assert a.batch % world == 0, 'the global batch must split evenly'
    per = a.batch // world
    torch.manual_seed(0)
    model = MODELS[a.model]().to(dev)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[local])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4 if a.model == 'wide_mlp' else 1e-3, eps=1e-7)
    x, y = load_idx('train')
    x, y = x.to(dev), y.to(dev)
    n = x.shape[0]
    steps = n // a.batch  # full global batches only
    g = torch.Generator(device='cpu')
    g.manual_seed(0)
    seconds, losses = [], []
    for epoch in range(a.epochs):
        perm = torch.randperm(n, generator=g).to(dev)  # the same on every rank
        torch.cuda.synchronize()
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        total = torch.zeros((), device=dev)
        for s in range(steps):
            idx = perm[s * a.batch + rank * per: s * a.batch + (rank + 1) * per]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
        if world > 1:
            dist.all_reduce(total)
        losses.append(float(total) / steps / world)
    steady = seconds[1:] or seconds
    result = dict(framework='pytorch-ddp' if world > 1 else 'pytorch', torch=torch.__version__, model=a.model,
                  world_size=world, global_batch=a.batch, steps_per_epoch=steps, epoch_seconds=seconds,
                  epoch_losses=losses,
                  samples_per_s=steps * a.batch * len(steady) / sum(steady),
                  step_ms=1e3 * sum(steady) / (steps * len(steady)))
    if rank == 0:
        with open(a.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


if __name__ == '__main__':
    main()

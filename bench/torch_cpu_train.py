# PyTorch side of bench/cpu_train.sh: the seed CNN (conv 3x3x32 + ReLU, maxpool 2, dense 64 +
# ReLU, dense 10), Adam 1e-3 (eps 1e-7, as shoal), batch 64, on the bundled mnist-10k train split,
# on the CPU with torch.set_num_threads(N). Timed as shoal times it: each epoch's wall time over
# its steps (shuffled batches, loss and accuracy summed), the median over the epochs; plus the
# median of single steps on fixed batches (torch_baseline.py's step_ms_median).
#   python3 bench/torch_cpu_train.py THREADS [EPOCHS]   -> one JSON object on stdout
import gzip, json, os, statistics as st, struct, sys, time
import numpy as np
import torch
import torch.nn as nn

threads = int(sys.argv[1])
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
torch.set_num_threads(threads)
here = os.path.dirname(os.path.abspath(__file__))
data = os.environ.get('MNIST_DIR', os.path.join(here, '..', 'data', 'mnist-10k'))


def load(name):
    with gzip.open(f'{data}/{name}-images-idx3-ubyte.gz') as f:
        _, n, h, w = struct.unpack('>IIII', f.read(16))
        x = np.frombuffer(f.read(), np.uint8).reshape(n, 1, h, w)
    with gzip.open(f'{data}/{name}-labels-idx1-ubyte.gz') as f:
        _, n = struct.unpack('>II', f.read(8))
        y = np.frombuffer(f.read(), np.uint8)
    return x, y


xtr, ytr = load('train')
xte, yte = load('t10k')
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 13 * 13, 64),
                      nn.ReLU(), nn.Linear(64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
lossf = nn.CrossEntropyLoss()
x = torch.tensor(xtr, dtype=torch.float32) / 255.0
y = torch.tensor(ytr, dtype=torch.long)
bs = 64


def step(xb, yb):
    opt.zero_grad(set_to_none=True)
    out = model(xb)
    loss = lossf(out, yb)
    loss.backward()
    opt.step()
    return loss.detach(), (out.argmax(1) == yb).sum()


# Warm-up, then single steps on fixed batches.
for i in range(5):
    step(x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs])
single = []
for i in range(50):
    t0 = time.perf_counter()
    step(x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs])
    single.append(time.perf_counter() - t0)

# Epochs over shuffled batches, as shoal's trainer runs them (the last partial batch too).
g = torch.Generator().manual_seed(0)
per_step, losses = [], []
for e in range(epochs):
    perm = torch.randperm(len(x), generator=g)
    t0 = time.perf_counter()
    loss_sum, correct, steps = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
    for i in range(0, len(x), bs):
        idx = perm[i:i + bs]
        l, c = step(x[idx], y[idx])
        loss_sum += l * len(idx)
        correct += c
        steps += 1
    per_step.append((time.perf_counter() - t0) * 1e3 / steps)
    losses.append(float(loss_sum) / len(x))
with torch.no_grad():
    acc = float((model(torch.tensor(xte, dtype=torch.float32) / 255.0).argmax(1) == torch.tensor(yte, dtype=torch.long))
                .float().mean())
print(json.dumps(dict(threads=threads, torch=torch.__version__, step_ms_median=round(st.median(per_step), 4),
                      single_step_ms_median=round(st.median(single) * 1e3, 4), epochs=epochs,
                      epoch_losses=[round(v, 4) for v in losses], test_accuracy=round(acc, 4))))

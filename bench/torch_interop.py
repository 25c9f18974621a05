"""Checkpoint interoperability with PyTorch, both ways, for the seed's MNIST CNN.
   python3 bench/torch_interop.py SHOAL_CHECKPOINT SHOAL_TEST_ACCURACY OUT_DIR
1. Loads the checkpoint shoal wrote (safetensors, shoal's names and PyTorch layouts) into a
   PyTorch module and scores the 2,000 test images: the accuracy must equal shoal's.
2. Trains the same module one epoch in PyTorch, saves it with safetensors under shoal's names,
   and prints the test accuracy; the caller then scores that file with shoal (--weights)."""
import gzip, struct, sys, os, json
import numpy as np, torch, torch.nn as nn
from safetensors.torch import load_file, save_file

ckpt, shoal_acc, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
D = os.environ.get('MNIST_DIR', 'data/mnist-10k')
def load(name):
    with gzip.open(f'{D}/{name}-images-idx3-ubyte.gz') as f:
        _, n, h, w = struct.unpack('>IIII', f.read(16)); X = np.frombuffer(f.read(), np.uint8).reshape(n, 1, h, w)
    with gzip.open(f'{D}/{name}-labels-idx1-ubyte.gz') as f:
        _, n = struct.unpack('>II', f.read(8)); y = np.frombuffer(f.read(), np.uint8)
    return torch.tensor(X, dtype=torch.float32) / 255.0, torch.tensor(y, dtype=torch.long)

class Net(nn.Module):  # attribute names = shoal's pipeline node ids
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3); self.d1 = nn.Linear(32 * 13 * 13, 64); self.d2 = nn.Linear(64, 10)
    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2).flatten(1)
        return self.d2(torch.relu(self.d1(x)))

xte, yte = load('t10k'); xtr, ytr = load('train')
def accuracy(m):
    with torch.no_grad(): return (m(xte).argmax(1) == yte).float().mean().item()

m = Net()
state = load_file(ckpt)
params = {k: v for k, v in state.items() if k in dict(m.named_parameters())}
missing = set(dict(m.named_parameters())) - set(params)
assert not missing, f'missing in shoal checkpoint: {missing}'
m.load_state_dict(params)
acc = accuracy(m)
print(json.dumps({'shoal_checkpoint_in_torch_accuracy': acc, 'shoal_reported_accuracy': shoal_acc,
                  'extra_tensors (optimizer state)': sorted(set(state) - set(params))[:6]}))
assert abs(acc - shoal_acc) <= 0.001, 'PyTorch scores the shoal checkpoint differently'

torch.manual_seed(1); t = Net(); opt = torch.optim.Adam(t.parameters(), lr=1e-3)
perm = torch.randperm(len(xtr))
for i in range(0, len(xtr) // 64 * 64, 64):
    idx = perm[i:i + 64]; opt.zero_grad(); nn.functional.cross_entropy(t(xtr[idx]), ytr[idx]).backward(); opt.step()
save_file({k: v.contiguous() for k, v in t.state_dict().items()}, f'{out}/torch_made.safetensors')
print(json.dumps({'torch_made_accuracy': accuracy(t)}))

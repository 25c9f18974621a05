"""Training parity with PyTorch: one epoch of an example pipeline in shoal and in PyTorch from
the same initial weights, in file order, with the same optimizer; the final weights compared,
beside PyTorch's own CPU-vs-GPU difference on the same run.

    python3 bench/parity.py --shoal build/shoal --model resnet_mnist [--model ...] --out OUT

For each model: PyTorch builds it (module names = the pipeline's node ids, so state_dict keys
are shoal's parameter names), saves its initial weights as safetensors, and trains one epoch on
the CPU and on the GPU (fp32, TF32 off); shoal runs the example with those weights
(`--weights`), shuffle off and one epoch, on the CPU and on the GPU, and writes its checkpoint.
The table gives, per model, the largest relative difference over all parameters
(max |a - b| / max |b| per tensor): shoal vs PyTorch on each device, and PyTorch CPU vs GPU.
Results go to OUT/parity.json."""
import argparse, gzip, json, os, re, struct, subprocess, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

DATA = os.path.abspath(os.environ.get('MNIST_DIR', 'data/mnist-10k'))


def load_idx(name):
    with gzip.open(f'{DATA}/{name}-images-idx3-ubyte.gz') as f:
        _, n, h, w = struct.unpack('>IIII', f.read(16))
        x = np.frombuffer(f.read(), np.uint8).reshape(n, 1, h, w)
    with gzip.open(f'{DATA}/{name}-labels-idx1-ubyte.gz') as f:
        _, n = struct.unpack('>II', f.read(8))
        y = np.frombuffer(f.read(), np.uint8)
    return torch.tensor(x, dtype=torch.float32) / 255.0, torch.tensor(y, dtype=torch.long)


# ---- the models: attribute names are the pipelines' node ids --------------------------------

class MnistCnn(nn.Module):  # examples/mnist_cnn.mmd
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3)
        self.d1 = nn.Linear(32 * 13 * 13, 64)
        self.d2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2).flatten(1)
        return self.d2(F.relu(self.d1(x)))


class ResnetMnist(nn.Module):  # examples/resnet_mnist.mmd
    def __init__(self):
        super().__init__()
        conv = lambda i, o, k, s=1, p=1: nn.Conv2d(i, o, k, stride=s, padding=p, bias=False)
        self.stem = conv(1, 16, 3); self.bn0 = nn.BatchNorm2d(16)
        self.b1c1 = conv(16, 16, 3); self.b1n1 = nn.BatchNorm2d(16)
        self.b1c2 = conv(16, 16, 3); self.b1n2 = nn.BatchNorm2d(16)
        self.b2c1 = conv(16, 32, 3, 2); self.b2n1 = nn.BatchNorm2d(32)
        self.b2c2 = conv(32, 32, 3); self.b2n2 = nn.BatchNorm2d(32)
        self.b2p = conv(16, 32, 1, 2, 0); self.b2pn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        r0 = F.relu(self.bn0(self.stem(x)))
        b1 = self.b1n2(self.b1c2(F.relu(self.b1n1(self.b1c1(r0)))))
        b1 = F.relu(b1 + r0)
        b2 = self.b2n2(self.b2c2(F.relu(self.b2n1(self.b2c1(b1)))))
        b2 = F.relu(b2 + self.b2pn(self.b2p(b1)))
        return self.fc(F.adaptive_avg_pool2d(b2, 1).flatten(1))


class MobilenetMnist(nn.Module):  # examples/mobilenet_mnist.mmd
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False); self.bn0 = nn.BatchNorm2d(16)
        self.dw1 = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False); self.bn1 = nn.BatchNorm2d(16)
        self.se1r = nn.Conv2d(16, 4, 1); self.se1e = nn.Conv2d(4, 16, 1)
        self.pw1 = nn.Conv2d(16, 32, 1, bias=False); self.bn2 = nn.BatchNorm2d(32)
        self.dw2 = nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32, bias=False); self.bn3 = nn.BatchNorm2d(32)
        self.pw2 = nn.Conv2d(32, 64, 1, bias=False); self.bn4 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.hardswish(self.bn0(self.stem(x)))
        x = F.hardswish(self.bn1(self.dw1(x)))
        s = F.hardsigmoid(self.se1e(F.relu(self.se1r(F.adaptive_avg_pool2d(x, 1)))))
        x = F.hardswish(self.bn2(self.pw1(x * s)))
        x = F.hardswish(self.bn3(self.dw2(x)))
        x = F.hardswish(self.bn4(self.pw2(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Block(nn.Module):  # one pre-norm encoder block; names match the pipeline's ids via prefix
    def __init__(self, e, heads, hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(e); self.att = nn.MultiheadAttention(e, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(e); self.mlp1 = nn.Linear(e, hidden); self.mlp2 = nn.Linear(hidden, e)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.att(h, h, h, need_weights=False)[0]
        return x + self.mlp2(F.gelu(self.mlp1(self.ln2(x))))


class TransformerMnist(nn.Module):  # examples/transformer_mnist.mmd
    def __init__(self, e=32, heads=4, hidden=64):
        super().__init__()
        self.patch = nn.Conv2d(1, e, 7, stride=7)  # 7x7 patches -> 16 tokens, a linear embedding
        self.pos = nn.Parameter(torch.zeros(1, 16, e)); nn.init.normal_(self.pos, std=0.02)
        self.blk1 = Block(e, heads, hidden); self.blk2 = Block(e, heads, hidden)
        self.fc = nn.Linear(e, 10)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        t = self.blk2(self.blk1(t))
        return self.fc(t.mean(1))


MODELS = {'mnist_cnn': MnistCnn, 'resnet_mnist': ResnetMnist, 'mobilenet_mnist': MobilenetMnist,
          'transformer_mnist': TransformerMnist}


def shoal_names(state):
    """PyTorch state_dict keys -> shoal's parameter names: the pipeline flattens nested
    modules with '.', as PyTorch does; `pos` (a bare parameter) is `pos.weight` in shoal."""
    out = {}
    for k, v in state.items():
        if k.endswith('num_batches_tracked'):
            continue
        out['pos.weight' if k == 'pos' else k] = v.detach().contiguous().cpu()
    return out


def train_torch(model, device, batch, lr, epochs=1):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    m = model.to(device).train()
    x, y = load_idx('train')
    opt = torch.optim.Adam(m.parameters(), lr=lr, eps=1e-7)  # shoal's (Keras's) eps
    for _ in range(epochs):
        for i in range(0, len(x), batch):  # file order; the last batch may be short
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
            opt.zero_grad()
            F.cross_entropy(m(xb), yb).backward()
            opt.step()
    return shoal_names(m.state_dict())


def rel_diff(a, b):
    """Largest over tensors of max|a - b| / max|b| (b the reference)."""
    worst, where = 0.0, ''
    for k in b:
        if k not in a:
            raise KeyError(f'{k} missing from the other side')
        d = (a[k].double() - b[k].double()).abs().max().item() / max(b[k].double().abs().max().item(), 1e-30)
        if d > worst:
            worst, where = d, k
    return worst, where


def pipeline_for_parity(src, out_dir, checkpoint):
    text = open(src).read()
    text = re.sub(r'path=\S+', f'path={DATA}', text)
    text = re.sub(r'(train:[^\]]*?)\]', lambda m: re.sub(r'\s(epochs|shuffle)=\S+', '', m.group(1)) + ' epochs=1 shuffle=false]', text)
    text = re.sub(r'(output:[^\]]*?)\]', lambda m: m.group(1) + f' checkpoint={checkpoint}]', text)
    path = os.path.join(out_dir, os.path.basename(src))
    open(path, 'w').write(text)
    return path


def batch_and_lr(src):
    text = open(src).read()
    batch = int(re.search(r'batch=(\d+)', text).group(1))
    lr = float(re.search(r'lr=([0-9.e-]+)', text).group(1))
    return batch, lr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shoal', default='build/shoal')
    ap.add_argument('--model', action='append', required=True)
    ap.add_argument('--out', default=os.environ.get('OUT', '/tmp/parity'))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cuda = torch.cuda.is_available()
    results = {}
    for name in args.model:
        src = f'examples/{name}.mmd'
        batch, lr = batch_and_lr(src)
        torch.manual_seed(0)
        init = MODELS[name]()
        init_path = os.path.join(args.out, f'{name}_init.safetensors')
        save_file(shoal_names(init.state_dict()), init_path)
        row = {'batch': batch, 'lr': lr}
        ref = {}
        for dev in ['cpu'] + (['cuda'] if cuda else []):
            torch.manual_seed(0)
            m = MODELS[name]()
            m.load_state_dict(init.state_dict())
            t0 = time.time()
            ref[dev] = train_torch(m, dev, batch, lr)
            row[f'torch_{dev}_s'] = round(time.time() - t0, 2)
            ck = os.path.join(args.out, f'{name}_shoal_{dev}.safetensors')
            mmd = pipeline_for_parity(src, args.out, ck)
            t0 = time.time()
            r = subprocess.run([args.shoal, 'run', mmd, '--device', dev, '--weights', init_path], capture_output=True, text=True)
            row[f'shoal_{dev}_s'] = round(time.time() - t0, 2)
            if r.returncode != 0:
                row[f'shoal_{dev}_error'] = (r.stderr or r.stdout)[-500:]
                continue
            got = {k: v for k, v in load_file(ck).items() if k in ref[dev]}
            row[f'shoal_vs_torch_{dev}'], row[f'shoal_vs_torch_{dev}_at'] = rel_diff(got, ref[dev])
        if 'cuda' in ref:
            row['torch_cpu_vs_gpu'], row['torch_cpu_vs_gpu_at'] = rel_diff(ref['cuda'], ref['cpu'])
        results[name] = row
        print(json.dumps({name: row}))
    json.dump(results, open(os.path.join(args.out, 'parity.json'), 'w'), indent=1)
    print(f"\n{'model':20} {'shoal/torch cpu':>16} {'shoal/torch gpu':>16} {'torch cpu/gpu':>14}")
    for name, r in results.items():
        f = lambda k: f"{r[k]:.2e}" if k in r else r.get(k.replace('shoal_vs_torch_', 'shoal_') + '_error', '-')[:14]
        print(f"{name:20} {f('shoal_vs_torch_cpu'):>16} {f('shoal_vs_torch_cuda'):>16} {f('torch_cpu_vs_gpu'):>14}")


if __name__ == '__main__':
    sys.exit(main())

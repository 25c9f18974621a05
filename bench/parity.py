"""Training parity with PyTorch: one epoch of an example pipeline in shoal and in PyTorch from
the same initial weights, in file order, with the same optimizer; the final weights compared,
beside PyTorch's own CPU-vs-GPU difference on the same run.

    python3 bench/parity.py --shoal build/shoal --model resnet_mnist [--model ...] --out OUT

For each model: PyTorch builds it (module names = the pipeline's node ids, so state_dict keys
are shoal's parameter names), saves its initial weights as safetensors, and trains one epoch on
the CPU and on the GPU (fp32, TF32 off); shoal runs the example with those weights
(`--weights`), shuffle off and one epoch, on the CPU and on the GPU, and writes its checkpoint.
Both sides take the batch, preprocessing (scale=1/255, mean, std), label smoothing and Adam or
AdamW settings from the pipeline, and train at its base rate: a schedule or warm-up is
stripped from the shoal run (PyTorch runs none). The models have no dropout (its masks cannot
match PyTorch's).
The table gives, per model, the largest relative difference over all parameters
(max |a - b| / max |b| per tensor): shoal vs PyTorch on each device, and PyTorch CPU vs GPU.
Results go to OUT/parity.json."""
import argparse, gzip, json, os, re, struct, subprocess, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from torch_common import DATA, MnistCnn, load_idx  # noqa: E402 (bench/ is the script's folder)


# ---- the models: attribute names are the pipelines' node ids --------------------------------

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
        r0 = F.max_pool2d(F.relu(self.bn0(self.stem(x))), 2)
        b1 = self.b1n2(self.b1c2(F.relu(self.b1n1(self.b1c1(r0)))))
        b1 = F.relu(b1 + r0)
        b2 = self.b2n2(self.b2c2(F.relu(self.b2n1(self.b2c1(b1)))))
        b2 = F.relu(b2 + self.b2pn(self.b2p(b1)))
        return self.fc(F.adaptive_avg_pool2d(b2, 1).flatten(1))


class MobilenetMnist(nn.Module):  # examples/mobilenet_mnist.mmd
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False); self.bn0 = nn.BatchNorm2d(16)
        self.dw1 = nn.Conv2d(16, 16, 5, padding=2, groups=16, bias=False); self.bn1 = nn.BatchNorm2d(16)
        self.se1r = nn.Conv2d(16, 4, 1); self.se1e = nn.Conv2d(4, 16, 1)
        self.pw1 = nn.Conv2d(16, 32, 1, bias=False); self.bn2 = nn.BatchNorm2d(32)
        self.dw2 = nn.Conv2d(32, 32, 5, stride=2, padding=2, groups=32, bias=False); self.bn3 = nn.BatchNorm2d(32)
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


class PositionEmbedding(nn.Module):  # shoal's position_embedding layer: x + weight [tokens, dim]
    def __init__(self, tokens, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(tokens, dim)); nn.init.uniform_(self.weight, -0.05, 0.05)

    def forward(self, x):
        return x + self.weight


class TransformerMnist(nn.Module):  # examples/transformer_mnist.mmd
    """Node ids are flat (Mermaid ids hold no '.'): block b's modules are attributes b{b}_ln1,
    b{b}_att, b{b}_ln2, b{b}_mlp1, b{b}_mlp2 of the model, as in the pipeline."""

    def __init__(self, e=32, heads=4, hidden=64, blocks=2):
        super().__init__()
        self.e, self.blocks = e, blocks
        self.patch = nn.Conv2d(1, e, 7, stride=7)  # 7x7 patches -> 16 tokens, a linear embedding
        self.pos = PositionEmbedding(16, e)
        for b in range(1, blocks + 1):
            setattr(self, f'b{b}_ln1', nn.LayerNorm(e))
            setattr(self, f'b{b}_att', nn.MultiheadAttention(e, heads, batch_first=True))
            setattr(self, f'b{b}_ln2', nn.LayerNorm(e))
            setattr(self, f'b{b}_mlp1', nn.Linear(e, hidden))
            setattr(self, f'b{b}_mlp2', nn.Linear(hidden, e))
        self.fc = nn.Linear(e, 10)

    def forward(self, x):
        t = self.pos(self.patch(x).reshape(-1, self.e, 16).transpose(1, 2))  # grid, tok, pos
        for b in range(1, self.blocks + 1):  # pre-norm encoder blocks
            m = lambda name: getattr(self, f'b{b}_{name}')
            h = m('ln1')(t)
            t = m('att')(h, h, h, need_weights=False)[0] + t
            t = m('mlp2')(F.gelu(m('mlp1')(m('ln2')(t)))) + t
        return self.fc(t.mean(1))


MODELS = {'mnist_cnn': MnistCnn, 'resnet_mnist': ResnetMnist, 'mobilenet_mnist': MobilenetMnist,
          'transformer_mnist': TransformerMnist}


def shoal_names(state):
    """PyTorch state_dict keys are shoal's parameter names (module names = node ids); shoal's
    checkpoints hold num_batches_tracked too, but the comparison leaves the counts out."""
    return {k: v.detach().contiguous().cpu() for k, v in state.items() if not k.endswith('num_batches_tracked')}


def stage_args(text, stage):
    """The key=value arguments of the pipeline's `stage` node (`t[train: ...]`) as strings."""
    m = re.search(r'\[' + stage + r':([^\]]*)\]', text)
    return dict(re.findall(r'(\w+)=(\S+)', m.group(1))) if m else {}


def settings(src):
    """What the PyTorch run needs from the pipeline: batch, preprocessing, loss, optimizer.
    A learning-rate schedule is left out on both sides (pipeline_for_parity strips it)."""
    text = open(src).read()
    inp, pre, train = stage_args(text, 'input'), stage_args(text, 'preprocess'), stage_args(text, 'train')
    opt = train.get('optimizer', 'adam')
    if opt not in ('adam', 'adamw') or train.get('loss', 'cross_entropy') not in ('cross_entropy', 'softmax_cross_entropy'):
        raise ValueError(f'{src}: parity knows cross-entropy with adam or adamw, not {train}')
    scale = pre.get('scale', '1/255')
    if scale != '1/255' or 'shift' in pre:
        raise ValueError(f'{src}: parity knows preprocess scale=1/255 [mean= std=], not {pre}')
    return {'batch': int(train.get('batch', inp.get('batch', 64))), 'lr': float(train.get('lr', 0.001)),
            'optimizer': opt, 'weight_decay': float(train.get('weight_decay', 0.01 if opt == 'adamw' else 0)),
            'eps': float(train.get('eps', 1e-8 if opt == 'adamw' else 1e-7)),  # shoal's adam: Keras's eps
            'betas': (float(train.get('beta1', 0.9)), float(train.get('beta2', 0.999))),
            'label_smoothing': float(train.get('label_smoothing', 0)),
            'mean': float(pre.get('mean', 0)), 'std': float(pre.get('std', 1))}


def train_torch(model, device, cfg, epochs=1):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    m = model.to(device).train()
    x, y = load_idx('train')
    x = (x - cfg['mean']) / cfg['std']
    Opt = torch.optim.AdamW if cfg['optimizer'] == 'adamw' else torch.optim.Adam
    opt = Opt(m.parameters(), lr=cfg['lr'], betas=cfg['betas'], eps=cfg['eps'], weight_decay=cfg['weight_decay'])
    batch = cfg['batch']
    for _ in range(epochs):
        for i in range(0, len(x), batch):  # file order; the last batch may be short
            xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
            opt.zero_grad()
            F.cross_entropy(m(xb), yb, label_smoothing=cfg['label_smoothing']).backward()
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
    """The example with the bundled data's absolute path, one epoch in file order at a constant
    rate (no schedule, no warm-up), and a checkpoint written at the end."""
    text = open(src).read()
    text = re.sub(r'path=\S+', f'path={DATA}', text)
    drop = r'\s(epochs|shuffle|schedule|warmup|t_max|eta_min|step_size|gamma)=[^\s\]]+'
    text = re.sub(r'(train:[^\]]*?)\]', lambda m: re.sub(drop, '', m.group(1)) + ' epochs=1 shuffle=false]', text)
    text = re.sub(r'(output:[^\]]*?)\]', lambda m: m.group(1) + f' checkpoint={checkpoint}]', text)
    path = os.path.join(out_dir, os.path.basename(src))
    open(path, 'w').write(text)
    return path


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
        cfg = settings(src)
        torch.manual_seed(0)
        init = MODELS[name]()
        init_path = os.path.join(args.out, f'{name}_init.safetensors')
        save_file(shoal_names(init.state_dict()), init_path)
        row = {'batch': cfg['batch'], 'lr': cfg['lr'], 'optimizer': cfg['optimizer']}
        ref = {}
        for dev in ['cpu'] + (['cuda'] if cuda else []):
            torch.manual_seed(0)
            m = MODELS[name]()
            m.load_state_dict(init.state_dict())
            t0 = time.time()
            ref[dev] = train_torch(m, dev, cfg)
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
            try:
                row[f'shoal_vs_torch_{dev}'], row[f'shoal_vs_torch_{dev}_at'] = rel_diff(got, ref[dev])
            except KeyError as e:  # a parameter named differently on the two sides
                row[f'shoal_{dev}_error'] = f'checkpoint: {e}'
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

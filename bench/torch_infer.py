"""PyTorch's side of the like-for-like inference benchmark (issue 13): the seed CNN
(examples/mnist_cnn.mmd) at batch 1, 64 and 8192, eager and torch.compile (reduce-overhead),
each timed the two ways shoal_bench times shoal's run():

  resident  the input already in GPU memory; the logits copied back to the host
            (shoal: Tensor::onDevice input, run() returns host tensors)
  pinned    the input in pinned host memory, copied to the GPU, the logits copied back
            (shoal: a host tensor, staged through its own pinned buffer)

Every timed call ends with the logits on the host, so both sides include the same download
and one synchronisation. The best of 3 medians of 100 calls, after 10 warm-ups (compile's
graph capture included in the warm-ups).

    python3 bench/torch_infer.py            # writes $OUT/torch_infer.json
"""
import json, os, statistics as st, sys, time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_common import MnistCnn  # noqa: E402

BATCHES = (1, 64, 8192)
RUNS, WARMUP, REPEATS = 100, 10, 3


def timed(call):
    """The best of REPEATS medians of RUNS calls: PyTorch's host-bound small batches moved by up
    to 2x between calls of the same script on one H200 (eager bs1 0.116-0.233 ms), so each side
    gets its best window."""
    for _ in range(WARMUP):
        call()
    medians = []
    for _ in range(REPEATS):
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        medians.append(st.median(times))
    return min(medians) * 1e3


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = MnistCnn().cuda().eval()
    compiled = torch.compile(model, mode='reduce-overhead')
    res = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__}
    with torch.no_grad():
        for bs in BATCHES:
            host = torch.rand(bs, 1, 28, 28).pin_memory()
            resident = host.cuda()
            for name, f in (('eager', model), ('compile_ro', compiled)):
                r = dict(
                    resident_ms=timed(lambda: f(resident).cpu()),
                    pinned_ms=timed(lambda: f(host.cuda(non_blocking=True)).cpu()),
                )
                res[f'{name}_bs{bs}'] = r
                print(f'torch {name:10s} bs {bs:5d}: input on the GPU {r["resident_ms"]:.4f} ms, '
                      f'from pinned host memory {r["pinned_ms"]:.4f} ms', flush=True)
    out = os.environ.get('OUT', '.')
    with open(os.path.join(out, 'torch_infer.json'), 'w') as f:
        json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()

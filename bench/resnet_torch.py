#!/usr/bin/env python3
"""PyTorch's side of bench/resnet_bench.sh: torchvision's ResNet-18 at 224 x 224 (random
weights, seed 0) on one GPU. Exports the model to ONNX (opset 17, dynamic batch) for shoal,
then times (the network with batch norm replaced by identity unless --norm batch: what shoal
runs), for each precision (fp32 with TF32 off, tf32, bf16 autocast) and mode (eager,
torch.compile default, max-autotune-no-cudagraphs, reduce-overhead):
  * inference: median ms of `runs` forwards at each batch size, input resident on the GPU,
    synchronised after each (device), and with the input copied from pinned host memory (e2e);
  * a training step at the training batch (SGD momentum 0.9, lr 0.01, cross-entropy on random
    labels): median ms over `steps` steps, synchronised after each, and the step's
    torch.cuda.max_memory_allocated().
Writes JSON to --out.

    python3 bench/resnet_torch.py --onnx resnet18.onnx --out torch.json
        [--modes eager,default] [--precisions fp32,tf32,bf16] [--batches 1,32,256]
        [--train-batch 128] [--runs 30] [--steps 20] [--export-only]
"""
import argparse
import json
import statistics
import sys
import time
import traceback


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--modes", default="eager,default")
    ap.add_argument("--precisions", default="fp32,tf32,bf16")
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--export-only", action="store_true", help="write the ONNX file and time nothing")
    ap.add_argument("--norm", choices=["none", "batch"], default="none",
                    help="the timed network's normalisation: none (the network shoal runs -- the eval-mode "
                         "export folds batch norm into the convolutions) or batch (torchvision's own)")
    a = ap.parse_args()
    import torch
    import torchvision

    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 224, 224)
    torch.onnx.export(model, (x,), a.onnx, input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    if a.export_only:
        return 0
    result = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "runs": a.runs, "steps": a.steps,
              "norm": a.norm, "results": []}
    batches = [int(b) for b in a.batches.split(",")]

    def sync_median(fn, n, warmup=5):
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            ms.append((time.perf_counter() - t) * 1e3)
        return statistics.median(ms)

    for precision in a.precisions.split(","):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
        for mode in a.modes.split(","):
            entry = {"precision": precision, "mode": mode}
            try:
                torch.manual_seed(0)
                net = torchvision.models.resnet18(
                    weights=None, norm_layer=(lambda c: torch.nn.Identity()) if a.norm == "none" else None).to(dev)
                fwd = net if mode == "eager" else torch.compile(
                    net, mode=None if mode == "default" else mode)
                net.eval()
                t0 = time.perf_counter()
                for bs in batches:
                    xd = torch.randn(bs, 3, 224, 224, device=dev)
                    xh = torch.randn(bs, 3, 224, 224).pin_memory()

                    def infer():
                        with torch.no_grad(), autocast:
                            fwd(xd)

                    def infer_e2e():
                        with torch.no_grad(), autocast:
                            fwd(xh.to(dev, non_blocking=True)).float().cpu()

                    entry[f"infer_{bs}_device_ms"] = sync_median(infer, a.runs)
                    entry[f"infer_{bs}_e2e_ms"] = sync_median(infer_e2e, a.runs)
                # Training.
                net.train()
                opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
                xt = torch.randn(a.train_batch, 3, 224, 224, device=dev)
                yt = torch.randint(0, 1000, (a.train_batch,), device=dev)

                def step():
                    opt.zero_grad(set_to_none=True)
                    with autocast:
                        loss = torch.nn.functional.cross_entropy(fwd(xt), yt)
                    loss.backward()
                    opt.step()

                torch.cuda.reset_peak_memory_stats()
                entry["train_step_ms"] = sync_median(step, a.steps, warmup=3)
                entry["train_max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
                entry["seconds_including_compile"] = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 (one mode failing must not lose the others)
                entry["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            print(json.dumps(entry), flush=True)
            result["results"].append(entry)
            json.dump(result, open(a.out, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

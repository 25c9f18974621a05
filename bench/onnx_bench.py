#!/usr/bin/env python3
"""shoal against ONNX Runtime and PyTorch on exported models (run by bench/onnx_bench.sh).

Exports torchvision's resnet18 and mobilenet_v3_small (random weights, seeded; batch-norm
statistics calibrated on random batches) and a small transformer encoder with
torch.onnx.export at opset 17 (a dynamic batch axis), then for each model and batch size:
  * ONNX Runtime on the CPU: the reference outputs, and its latency;
  * PyTorch on the GPU (fp32, TF32 off): outputs, eager latency, torch.compile latency;
  * shoal (`shoal run model.onnx --input x=FILE.npy --repeat N --report R.json`): on the GPU at
    every batch size, on the CPU interpreter at batch 1; outputs and latency.
The largest absolute and relative differences of shoal's outputs from ONNX Runtime's and
PyTorch's, and every latency (median of the timed runs, milliseconds), go to
$OUT/onnx_bench.json and a table to $OUT/onnx_bench.md.

Latencies: shoal's and the "e2e" PyTorch figures include copying the input to the GPU and the
output back (what `shoal run --repeat` times); PyTorch's "device" figures keep the input on the
GPU and synchronise after the forward. ONNX Runtime runs on the host.

    python3 bench/onnx_bench.py --shoal build-onnx-bench/shoal --out $OUT [--models resnet18,...]
                                [--batches 1,32] [--runs 50] [--no-compile] [--no-gpu]
"""
import argparse
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np


def log(*a):
    print(*a, flush=True)


# ---- models ------------------------------------------------------------------------------

class SmallEncoder:
    """A 2-layer post-norm transformer encoder written with plain modules (what
    nn.TransformerEncoder computes), used when nn.TransformerEncoder does not export."""

    @staticmethod
    def build(d=128, heads=4, ff=256, layers=2):
        import torch
        from torch import nn

        class Layer(nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = nn.Linear(d, 3 * d)
                self.proj = nn.Linear(d, d)
                self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
                self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)

            def forward(self, x):
                b, s, _ = x.shape
                q, k, v = self.qkv(x).reshape(b, s, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
                a = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, dim=-1) @ v
                x = self.n1(x + self.proj(a.transpose(1, 2).reshape(b, s, d)))
                return self.n2(x + self.ff2(torch.relu(self.ff1(x))))

        return nn.Sequential(*[Layer() for _ in range(layers)])


def calibrated(model, shape):
    """`model` in eval mode with batch-norm statistics measured on seeded random batches (as a
    trained model has them): with the default statistics (mean 0, variance 1) a randomly
    initialised mobilenet_v3_small's outputs are ~1e-9, too small for a comparison to mean much."""
    import torch
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(16, *shape, generator=g))
    return model.eval()


def make_model(name, fallback=False):
    import torch
    torch.manual_seed(0)
    if name == "resnet18":
        import torchvision
        return calibrated(torchvision.models.resnet18(weights=None), (3, 224, 224)), (3, 224, 224)
    if name == "mobilenet_v3_small":
        import torchvision
        return calibrated(torchvision.models.mobilenet_v3_small(weights=None), (3, 224, 224)), (3, 224, 224)
    if name == "transformer_encoder":
        if fallback:
            return SmallEncoder.build().eval(), (16, 128)
        layer = torch.nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=256, dropout=0.0,
                                                 batch_first=True)
        return torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval(), (16, 128)
    raise ValueError(f"unknown model {name}")


def export(model, sample_shape, path):
    """torch.onnx.export at opset 17 with a dynamic batch: the TorchScript exporter (what most
    deployed models went through), else the dynamo exporter. Returns which one wrote the file."""
    import torch
    x = torch.randn(2, *sample_shape)
    common = dict(input_names=["x"], output_names=["y"], opset_version=17)
    errors = []
    try:
        try:
            torch.onnx.export(model, (x,), path, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False,
                              **common)
        except TypeError:  # a torch whose export has no `dynamo` argument: TorchScript is its exporter
            torch.onnx.export(model, (x,), path, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, **common)
        return "torchscript"
    except Exception as e:  # noqa: BLE001 (try the other exporter, report both if it fails too)
        errors.append(f"torchscript: {type(e).__name__}: {e}")
    try:
        torch.onnx.export(model, (x,), path, dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},), **common)
        return "dynamo"
    except Exception as e:  # noqa: BLE001
        errors.append(f"dynamo: {type(e).__name__}: {e}")
    raise RuntimeError("torch.onnx.export failed: " + " | ".join(errors))


# ---- runners -----------------------------------------------------------------------------

def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def time_runs(fn, runs, warmup=3):
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    return median(ms), min(ms)


def run_ort(path, x, runs):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": x})[0]
    med, mn = time_runs(lambda: sess.run(None, {"x": x}), runs)
    return out, med, mn


def run_torch(model, x, runs, compile_model):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    m = model.to(dev)
    res = {}
    with torch.no_grad():
        xd = torch.from_numpy(x).to(dev)
        out = m(xd).float().cpu().numpy()

        def device_step(f):
            def step():
                f(xd)
                torch.cuda.synchronize()
            return step

        def e2e_step(f):
            def step():
                f(torch.from_numpy(x).to(dev)).cpu()
            return step

        res["eager_device_ms"], _ = time_runs(device_step(m), runs)
        res["eager_e2e_ms"], _ = time_runs(e2e_step(m), runs)
        if compile_model:
            try:
                t = time.perf_counter()
                cm = torch.compile(m)
                cm(xd)
                torch.cuda.synchronize()
                res["compile_seconds"] = time.perf_counter() - t
                res["compile_device_ms"], _ = time_runs(device_step(cm), runs, warmup=5)
                res["compile_e2e_ms"], _ = time_runs(e2e_step(cm), runs, warmup=5)
            except Exception as e:  # noqa: BLE001
                res["compile_error"] = f"{type(e).__name__}: {e}"
    m.cpu()
    return out, res


def run_shoal(shoal, path, xfile, device, runs, workdir, tag):
    report = os.path.join(workdir, f"{tag}.report.json")
    cmd = [shoal, "run", path, "--input", f"x={xfile}", "--device", device, "--repeat", str(runs),
           "--report", report]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        return None, {"error": (p.stderr or p.stdout).strip().splitlines()[-1] if (p.stderr or p.stdout) else
                      f"exit {p.returncode}", "command": " ".join(cmd)}
    r = json.load(open(report))
    out = np.asarray(r["outputs"]["y"], dtype=np.float32)
    return out, {"run_ms_median": r.get("run_ms_median"), "run_ms_min": r.get("run_ms_min"),
                 "device": r.get("device"), "process_seconds": wall}


def diff(a, b):
    """Largest |a - b| and largest |a - b| / max(|b|, 1e-6 * max|b|)."""
    if a is None or b is None:
        return None
    if a.shape != b.shape:
        return {"shape_mismatch": [list(a.shape), list(b.shape)]}
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    scale = np.maximum(np.abs(b.astype(np.float64)), 1e-6 * float(np.max(np.abs(b))) + 1e-30)
    return {"max_abs": float(d.max()), "max_rel": float((d / scale).max()), "ref_max_abs": float(np.abs(b).max())}


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shoal", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="resnet18,mobilenet_v3_small,transformer_encoder")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-gpu", action="store_true", help="no PyTorch GPU and no shoal --device cuda")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = os.path.join(args.out, "work")
    os.makedirs(work, exist_ok=True)
    import torch
    import onnx
    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    gpu = not args.no_gpu and torch.cuda.is_available()
    result = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort_version,
              "gpu": torch.cuda.get_device_name(0) if gpu else None, "runs": args.runs, "models": {}}
    batches = [int(b) for b in args.batches.split(",")]
    for name in args.models.split(","):
        log(f"== {name}")
        entry = result["models"].setdefault(name, {"batches": {}})
        try:
            model, shape = make_model(name)
            path = os.path.join(work, f"{name}.onnx")
            try:
                entry["exporter"] = export(model, shape, path)
            except RuntimeError as e:
                if name != "transformer_encoder":
                    raise
                # nn.TransformerEncoder's export failed: the same computation from plain modules.
                entry["export_error"] = str(e)
                model, shape = make_model(name, fallback=True)
                entry["exporter"] = export(model, shape, path) + " (plain-module encoder)"
            proto = onnx.load(path)
            entry["ops"] = sorted({n.op_type for n in proto.graph.node})
            entry["opset"] = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")][0]
            check = subprocess.run([args.shoal, "check", path], capture_output=True, text=True)
            entry["shoal_check"] = (check.stdout + check.stderr).strip()
            log(f"   exported ({entry['exporter']}, opset {entry['opset']}): {', '.join(entry['ops'])}")
            log(f"   shoal check: {entry['shoal_check']}")
        except Exception as e:  # noqa: BLE001
            entry["error"] = f"{type(e).__name__}: {e}"
            log("   " + entry["error"])
            traceback.print_exc()
            continue
        rng = np.random.default_rng(0)
        for bs in batches:
            b = entry["batches"].setdefault(str(bs), {})
            x = rng.standard_normal((bs, *shape)).astype(np.float32)
            xfile = os.path.join(work, f"{name}_bs{bs}.npy")
            np.save(xfile, x)
            ref = None
            if ort_version:
                try:
                    ref, b["ort_cpu_ms"], _ = run_ort(path, x, args.runs)
                except Exception as e:  # noqa: BLE001
                    b["ort_error"] = f"{type(e).__name__}: {e}"
            # PyTorch on the CPU: a reference on every machine.
            with torch.no_grad():
                tcpu = model.cpu()(torch.from_numpy(x)).numpy()
            tout = None
            if gpu:
                try:
                    tout, b["torch"] = run_torch(model, x, args.runs, not args.no_compile)
                except Exception as e:  # noqa: BLE001
                    b["torch_error"] = f"{type(e).__name__}: {e}"
            devices = (["cuda"] if gpu else []) + (["cpu"] if bs == 1 else [])
            for dev in devices:
                runs = args.runs if dev == "cuda" else max(3, args.runs // 10)
                out, info = run_shoal(args.shoal, path, xfile, dev, runs, work, f"{name}_bs{bs}_{dev}")
                info["vs_ort"] = diff(out, ref)
                info["vs_torch"] = diff(out, tout)
                info["vs_torch_cpu"] = diff(out, tcpu)
                b[f"shoal_{dev}"] = info
            if ref is not None:
                b["torch_cpu_vs_ort"] = diff(tcpu, ref)
                if tout is not None:
                    b["torch_vs_ort"] = diff(tout, ref)
            log(f"   batch {bs}: {json.dumps(b)}")
    json.dump(result, open(os.path.join(args.out, "onnx_bench.json"), "w"), indent=1)
    table = render(result)
    open(os.path.join(args.out, "onnx_bench.md"), "w").write(table)
    print(table)


def fmt_ms(v):
    return "—" if v is None else f"{v:.3f}"


def fmt_err(d):
    if not d:
        return "—"
    if "shape_mismatch" in d:
        return "shape " + str(d["shape_mismatch"])
    return f"{d['max_abs']:.2e} / {d['max_abs'] / max(d['ref_max_abs'], 1e-300):.2e}"


def render(result):
    lines = [f"# shoal vs ONNX Runtime and PyTorch ({result['gpu'] or 'no GPU'}; torch {result['torch']}, "
             f"onnx {result['onnx']}, onnxruntime {result['onnxruntime']})", "",
             "Errors: largest absolute difference of shoal's output / the same divided by the reference's largest "
             "magnitude. Latency: median ms of "
             f"{result['runs']} runs (shoal and PyTorch e2e include the host<->GPU copies).", "",
             "| model | batch | shoal vs ORT | shoal vs torch (GPU) | shoal vs torch (CPU) | shoal cuda ms | "
             "shoal cpu ms | ORT cpu ms | torch eager ms (device / e2e) | torch.compile ms (device / e2e) |",
             "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
    for name, m in result["models"].items():
        if "error" in m:
            lines.append(f"| {name} | — | {m['error']} | | | | | | | |")
            continue
        for bs, b in m["batches"].items():
            cu, cp, t = b.get("shoal_cuda", {}), b.get("shoal_cpu", {}), b.get("torch", {})
            shoal_err = cu.get("error") or cp.get("error")
            if shoal_err:  # the reason, without the file name, shortened for the table
                shoal_err = shoal_err.split(": error: ", 1)[-1]
                shoal_err = "shoal: " + (shoal_err if len(shoal_err) <= 160 else shoal_err[:157] + "...")
            err_ort = fmt_err(cu.get("vs_ort") or cp.get("vs_ort")) if not shoal_err else shoal_err
            torch_cpu = fmt_err(cu.get("vs_torch_cpu") or cp.get("vs_torch_cpu")) if not shoal_err else "—"
            lines.append(
                f"| {name} | {bs} | {err_ort} | {fmt_err(cu.get('vs_torch'))} | {torch_cpu} | "
                f"{fmt_ms(cu.get('run_ms_median'))} | "
                f"{fmt_ms(cp.get('run_ms_median'))} | {fmt_ms(b.get('ort_cpu_ms'))} | "
                f"{fmt_ms(t.get('eager_device_ms'))} / {fmt_ms(t.get('eager_e2e_ms'))} | "
                f"{fmt_ms(t.get('compile_device_ms'))} / {fmt_ms(t.get('compile_e2e_ms'))} |")
    lines.append("")
    for name, m in result["models"].items():
        if "shoal_check" in m:
            lines.append(f"- {name} ({m.get('exporter')}, opset {m.get('opset')}): `{m['shoal_check']}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Training parity of ONNX imports: PyTorch's half of bench/onnx_train_parity.sh.

  onnx_train_torch.py make OUT [--models a,b] [--steps 20] [--batch 16]
      For each model: builds it in PyTorch (seeded, dropout 0), exports it to OUT/<model>/model.onnx
      with TorchScript's exporter at opset 17 in training mode (batch norm from the batch's
      statistics), writes the batches of every step (step<k>_x.bin, step<k>_labels.bin) and
      spec.json, then trains copies of the same initial weights on the same batches with
      softmax cross-entropy and the spec's optimizer in float64 on the CPU (the reference), fp32
      on the CPU and fp32 on the GPU (TF32 off): torch.json holds the three loss curves,
      torch_times.json the fp32 runs' step times.
  onnx_train_torch.py compare OUT
      Sets shoal's curves (OUT/<model>/shoal_<device>.json, bench/onnx_train_parity.cpp) beside
      PyTorch's: the largest |loss - float64 loss| over the steps of each, relative to the float64
      loss. shoal is within PyTorch's noise when its deviation is at most 4 x the larger of PyTorch's
      own two fp32 deviations (or 1e-6). Then the step times side by side (shoal's step_ms beside
      PyTorch eager's, CPU and GPU, fp32). Writes OUT/onnx_train_parity.{md,json}; exits 1 when a
      model that PyTorch trained is missing a shoal curve or falls outside.
"""
import argparse
import copy
import json
import os
import sys
import time
import traceback


def build(name):
    """(module taking one tensor and returning logits, input kind, input shape without batch, classes)."""
    import torch
    import torch.nn as nn
    if name == "resnet18":
        import torchvision
        return torchvision.models.resnet18(num_classes=10), "image", (3, 64, 64), 10
    if name == "mobilenet_v3_small":
        import torchvision
        m = torchvision.models.mobilenet_v3_small(num_classes=10)
        return m, "image", (3, 64, 64), 10
    if name == "efficientnet_b0":
        import torchvision
        return torchvision.models.efficientnet_b0(num_classes=10, stochastic_depth_prob=0.0), "image", (3, 64, 64), 10
    if name == "convnext_atto":
        import timm
        return timm.create_model("convnext_atto", num_classes=10), "image", (3, 64, 64), 10
    if name == "vit_tiny":
        import timm
        return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=10), "image", (3, 32, 32), 10

    class Logits(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(input_ids=x).logits

    if name == "bert_tiny":
        from transformers import BertConfig, BertForSequenceClassification
        cfg = BertConfig(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, max_position_embeddings=64, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, num_labels=5, attn_implementation="eager")
        return Logits(BertForSequenceClassification(cfg)), "tokens", (16,), 5
    if name == "gpt2_tiny":
        from transformers import GPT2Config, GPT2ForSequenceClassification
        cfg = GPT2Config(vocab_size=512, n_embd=64, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, num_labels=5, pad_token_id=0, attn_implementation="eager")
        return Logits(GPT2ForSequenceClassification(cfg)), "tokens", (16,), 5
    if name == "lstm":
        class LstmClassifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.emb = nn.Embedding(512, 32)
                self.lstm = nn.LSTM(32, 48, batch_first=True)
                self.head = nn.Linear(48, 5)

            def forward(self, x):
                h, _ = self.lstm(self.emb(x))
                return self.head(h[:, -1])
        return LstmClassifier(), "tokens", (12,), 5
    raise SystemExit(f"unknown model '{name}'")


MODELS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_atto", "vit_tiny", "bert_tiny", "gpt2_tiny", "lstm"]


def no_dropout(m):
    import torch.nn as nn
    for mod in m.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0


def train_curve(model, batches, opt_spec, dtype, device, times=None):
    """The loss of every step; with `times` (a list), each step's wall milliseconds appended to
    it (the step ends with loss.item(), which waits for the GPU: what shoal's Trainer::step
    returning its loss costs too)."""
    import torch
    m = copy.deepcopy(model).to(device=device, dtype=dtype).train()
    if opt_spec["kind"] == "sgd":
        opt = torch.optim.SGD(m.parameters(), lr=opt_spec["lr"], momentum=opt_spec.get("momentum", 0.0),
                              weight_decay=opt_spec.get("weight_decay", 0.0))
    else:
        opt = torch.optim.AdamW(m.parameters(), lr=opt_spec["lr"], weight_decay=opt_spec.get("weight_decay", 0.0))
    losses = []
    for x, y in batches:
        t0 = time.perf_counter()
        x = x.to(device=device, dtype=dtype if x.is_floating_point() else x.dtype)
        y = y.to(device)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        if times is not None:
            times.append((time.perf_counter() - t0) * 1e3)
    return losses


def median_after_first(ms):
    later = sorted(ms[1:]) or ms
    return later[len(later) // 2] if later else None


def make(a):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(False)
    names = a.models.split(",") if a.models else MODELS
    os.makedirs(a.out, exist_ok=True)
    for name in names:
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        try:
            torch.manual_seed(0)
            model, kind, shape, classes = build(name)
            no_dropout(model)
            model = model.float().train()
            g = torch.Generator().manual_seed(1)
            # Labels a model can learn, so the loss moves: images go to the class of a fixed
            # random projection's largest score, token sequences to their first token's residue.
            teacher = torch.randn(classes, int(torch.tensor(shape).prod()), generator=g)
            batches = []
            for k in range(a.steps):
                if kind == "image":
                    x = torch.randn((a.batch,) + shape, generator=g)
                    y = (x.reshape(a.batch, -1) @ teacher.T).argmax(1)
                else:
                    x = torch.randint(1, 512, (a.batch,) + shape, generator=g)
                    y = x[:, 0] % classes
                batches.append((x, y))
                x.numpy().astype("<f4" if kind == "image" else "<i8").tofile(os.path.join(d, f"step{k}_x.bin"))
                y.numpy().astype("<i8").tofile(os.path.join(d, f"step{k}_labels.bin"))
            opt_spec = {"kind": "adamw", "lr": 1e-3, "weight_decay": 0.01} if kind == "tokens" else \
                       {"kind": "sgd", "lr": 0.001, "momentum": 0.9}
            spec = {"input": {"name": "x", "dtype": "f32" if kind == "image" else "i64",
                              "shape": [a.batch] + list(shape)},
                    "steps": a.steps, "optimizer": opt_spec, "classes": classes,
                    "parameters": sum(p.numel() for p in model.parameters())}
            # Export a copy: tracing in training mode runs the model (batch norm's running
            # statistics move), and the curves below start from the untouched weights.
            exp = copy.deepcopy(model)
            torch.onnx.export(exp, (batches[0][0],), os.path.join(d, "model.onnx"), input_names=["x"],
                              output_names=["logits"], opset_version=17, dynamo=False,
                              training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
            cpu_ms, cuda_ms = [], []
            curves = {"float64_cpu": train_curve(model, batches, opt_spec, torch.float64, "cpu"),
                      "fp32_cpu": train_curve(model, batches, opt_spec, torch.float32, "cpu", cpu_ms)}
            if torch.cuda.is_available():
                curves["fp32_cuda"] = train_curve(model, batches, opt_spec, torch.float32, "cuda", cuda_ms)
            # Step times (eager, the median step after the first), for bench/onnx_train_parity's
            # side-by-side table.
            with open(os.path.join(d, "torch_times.json"), "w") as f:
                json.dump({"cpu_threads": torch.get_num_threads(), "fp32_cpu_step_ms": median_after_first(cpu_ms),
                           "fp32_cuda_step_ms": median_after_first(cuda_ms)}, f)
            with open(os.path.join(d, "spec.json"), "w") as f:
                json.dump(spec, f)
            with open(os.path.join(d, "torch.json"), "w") as f:
                json.dump(curves, f)
            print(f"{name}: {spec['parameters']} parameters, loss {curves['float64_cpu'][0]:.5f} -> "
                  f"{curves['float64_cpu'][-1]:.5f} (float64)", flush=True)
        except Exception as e:  # one model's failure (an export PyTorch refuses) does not stop the rest
            print(f"{name}: failed in PyTorch: {type(e).__name__}: {str(e)[:300]}", flush=True)
            traceback.print_exc(limit=3)
            with open(os.path.join(d, "torch_failed.txt"), "w") as f:
                f.write(f"{type(e).__name__}: {e}\n")


def compare(a):
    rows, ok_all, report = [], True, {}
    for name in sorted(os.listdir(a.out)):
        d = os.path.join(a.out, name)
        tp = os.path.join(d, "torch.json")
        if not os.path.isfile(tp):
            continue
        curves = json.load(open(tp))
        spec = json.load(open(os.path.join(d, "spec.json")))
        ref = curves["float64_cpu"]

        def dev(c):
            return max(abs(x - r) / max(abs(r), 1e-12) for x, r in zip(c, ref)) if len(c) == len(ref) else None

        torch_noise = max(dev(curves[k]) for k in ("fp32_cpu", "fp32_cuda") if k in curves)
        bound = max(4 * torch_noise, 1e-6)
        entry = {"parameters": spec["parameters"], "steps": spec["steps"], "loss_first": ref[0], "loss_last": ref[-1],
                 "torch_fp32_cpu": dev(curves["fp32_cpu"]), "torch_fp32_cuda": dev(curves.get("fp32_cuda", [])),
                 "bound": bound}
        verdict = []
        for device in ("cpu", "cuda"):
            sp = os.path.join(d, f"shoal_{device}.json")
            if not os.path.isfile(sp):
                entry[f"shoal_{device}"] = None
                verdict.append(f"{device}: no curve")
                ok_all = False
                continue
            c = json.load(open(sp))["losses"]
            e = dev(c)
            entry[f"shoal_{device}"] = e
            good = e is not None and e <= bound
            ok_all &= good
            verdict.append(f"{device} {'ok' if good else 'OUTSIDE'}")
        entry["verdict"] = ", ".join(verdict)
        report[name] = entry
        f = lambda v: "—" if v is None else f"{v:.1e}"
        rows.append(f"| {name} | {spec['parameters']:,} | {spec['steps']} | {ref[0]:.4f} → {ref[-1]:.4f} | "
                    f"{f(entry['torch_fp32_cpu'])} | {f(entry['torch_fp32_cuda'])} | {f(entry['shoal_cpu'])} | "
                    f"{f(entry['shoal_cuda'])} | {entry['verdict']} |")
    table = ("| model | parameters | steps | float64 loss, first → last | torch fp32 CPU | torch fp32 GPU | "
             "shoal CPU | shoal GPU | within 4 × PyTorch's noise |\n| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n"
             + "\n".join(rows) + "\n")
    print(table)
    times = step_times(a.out, report)
    print(times)
    with open(os.path.join(a.out, "onnx_train_parity.md"), "w") as fh:
        fh.write("Largest |loss − float64 loss| / |float64 loss| over the steps.\n\n" + table + "\n" + times)
    with open(os.path.join(a.out, "onnx_train_parity.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    return 0 if ok_all and rows else 1


def step_times(out, report):
    """A table of training-step times, shoal beside PyTorch eager in fp32 (each the median step
    after the first, ms), on the CPU and on the GPU; ratios shoal / PyTorch. Fills report's
    entries with them."""
    rows = []
    for name in sorted(report):
        d = os.path.join(out, name)
        tp = os.path.join(d, "torch_times.json")
        if not os.path.isfile(tp):
            continue
        t = json.load(open(tp))
        cells = []
        for device in ("cpu", "cuda"):
            sp = os.path.join(d, f"shoal_{device}.json")
            shoal_ms = None
            if os.path.isfile(sp):
                ms = json.load(open(sp)).get("step_ms") or []
                shoal_ms = median_after_first(ms) if isinstance(ms, list) else ms
            torch_ms = t.get(f"fp32_{device}_step_ms")
            ratio = shoal_ms / torch_ms if shoal_ms and torch_ms else None
            report[name][f"step_ms_shoal_{device}"] = shoal_ms
            report[name][f"step_ms_torch_{device}"] = torch_ms
            report[name][f"step_ratio_{device}"] = ratio
            f = lambda v, p=2: "—" if v is None else f"{v:.{p}f}"
            cells += [f(shoal_ms), f(torch_ms), "—" if ratio is None else f"{ratio:.2f}×"]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {t.get('cpu_threads', '?')} |")
    if not rows:
        return ""
    return ("Training step, fp32, the median step after the first (ms): shoal's Trainer::step beside PyTorch eager "
            "(each step ends by reading the loss).\n\n"
            "| model | shoal CPU | PyTorch CPU | ratio | shoal GPU | PyTorch GPU | ratio | CPU threads (PyTorch) |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" + "\n".join(rows) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--models", default="")
    m.add_argument("--steps", type=int, default=20)
    m.add_argument("--batch", type=int, default=16)
    c = sub.add_parser("compare")
    c.add_argument("out")
    a = ap.parse_args()
    if a.cmd == "make":
        make(a)
        return 0
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())

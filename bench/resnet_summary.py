#!/usr/bin/env python3
"""Summary of a device call's ResNet-18 results directory (bench/results/*/call*.sh write it):
each shoal_<precision>_<configuration>_<run>.json of resnet_bench (device ms with the input on the
GPU at each batch, the training step, its first and last loss), torch.json of bench/resnet_torch.py,
the profiles' tensor-core launches of layers 1-4 (prof_*.log) and Nsight Compute's headline
figures (ncu_*.txt).

  python3 bench/resnet_summary.py RESULTS_DIR
"""
import glob
import json
import os
import re
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    r = sys.argv[1]
    for f in sorted(glob.glob(os.path.join(r, "shoal_*.json"))):
        try:
            d = json.load(open(f))
            inference = {b: round(v["ms_median_input_on_gpu"], 3) for b, v in d["inference"].items()}
            train = d["train"]
            print(os.path.basename(f)[6:-5], inference, "train", round(train["step_ms_median"], 2), "loss",
                  train.get("loss_first"), train.get("loss_last"))
        except (OSError, ValueError, KeyError) as e:
            print(f, e)
    try:
        for t in json.load(open(os.path.join(r, "torch.json")))["results"]:
            print("torch", t["precision"], t["mode"],
                  {k: round(v, 3) for k, v in t.items() if k.endswith("device_ms") or k == "train_step_ms"})
    except (OSError, ValueError, KeyError) as e:
        print("torch", e)
    for f in sorted(glob.glob(os.path.join(r, "prof_*.log"))):
        print("==", os.path.basename(f))
        lines = [l.split() for l in open(f) if "TFLOP/s" in l and re.search(r"layer[1234]", l) and "m//" not in l]
        for w in lines[:16]:
            print(w[0], w[2], w[-1], w[-2])
    keys = ("Duration", "Compute (SM) Throughput", "Executed Ipc Active", "Issue Slots Busy", "No Eligible",
            "Executed Instructions ")
    for f in sorted(glob.glob(os.path.join(r, "ncu_*.txt"))):
        print("==", os.path.basename(f))
        for l in open(f):
            if any(k in l for k in keys):
                print(" ", l.strip())


if __name__ == "__main__":
    main()

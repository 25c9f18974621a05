#!/usr/bin/env python3
"""Static instruction counts of shoal's generated tensor-core kernels, no GPU needed.

For each implicit-GEMM kernel (`*_tc`) of a module's generated CUDA source: the PTX instructions
of its main loop (one stage: the copies, the barrier, the products), how many of them are
copies, predicates, branches and integer multiplies, the whole kernel's SASS size, registers
and spilled bytes (ptxas on the local toolkit), and with producer warps the PTX of their loop
(a stage's copies; the main loop is then the multiplying warps'). A stage's instruction count is what the copies cost
the multiplying warps; the SASS size also holds the prologue and the epilogue.

  scripts/kernel-stats.py model.mmd [--train] [--precision bf16] [--arch sm_90]
                          [--shoal build/shoal] [--nvcc /usr/local/cuda/bin/nvcc]
  scripts/kernel-stats.py --source module.cu      (a source `shoal dump --cuda` wrote)

Compare two builds by running each build's `shoal` on the same model (docs/PERF.md,
"2026-12-05 (session 3)").
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def loop_stats(ptx_body, producer=False):
    """The main loop: the shortest span from a label to a branch back to it that holds a
    barrier and an MMA (wgmma or mma.sync). With `producer`: the loop of a kernel's producer
    warps instead (CudaCodegenOptions::halfProducerWarps: copies and named barriers, no MMA)."""
    lines = [l.strip() for l in ptx_body.split("\n")]
    best = None
    for i, l in enumerate(lines):
        if not (l.startswith("$L__") and l.endswith(":")):
            continue
        back = re.compile(r"bra(\.uni)?\s+" + re.escape(l[:-1]) + ";")
        for j in range(i + 1, len(lines)):
            if back.search(lines[j]):
                seg = lines[i:j + 1]
                barrier = any(re.search(r"\bbar\.(sync|arrive)", s) for s in seg)
                mma = any("mma" in s for s in seg)
                copies = any("cp.async.c" in s for s in seg)
                if barrier and (copies and not mma if producer else mma):
                    if best is None or j - i < best[1] - best[0]:
                        best = (i, j)
                break
    if best is None:
        return None
    seg = [s for s in lines[best[0]:best[1] + 1]
           if s and not s.startswith("//") and not s.startswith("$L") and s not in ("{", "}") and not s.startswith(".reg")]
    count = lambda p: sum(1 for s in seg if re.match(p, s))
    return {
        "ptx": len(seg),
        "copies": count(r"cp\.async\.c[ga]\."),
        "setp": count(r"setp"),
        "branches": count(r"(@!?%p\d+ )?bra"),
        "mul": count(r"(mul|mad|div|rem)"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--source")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--shoal", default="build/shoal")
    ap.add_argument("--nvcc", default="/usr/local/cuda/bin/nvcc")
    ap.add_argument("--all", action="store_true", help="every kernel, not only the implicit GEMMs")
    args = ap.parse_args()
    if not args.model and not args.source:
        ap.error("a model or --source")
    tmp = tempfile.mkdtemp(prefix="kernel-stats-")
    src = args.source
    if not src:
        src = os.path.join(tmp, "module.cu")
        cmd = [args.shoal, "dump", "--cuda", "--precision", args.precision, "--arch", args.arch, args.model, "-o", src]
        if args.train:
            cmd.insert(3, "--train")
        subprocess.run(cmd, check=True)
    arch = args.arch + ("a" if args.arch == "sm_90" else "")
    ptx, cubin = os.path.join(tmp, "module.ptx"), os.path.join(tmp, "module.cubin")
    subprocess.run([args.nvcc, "-arch=" + arch, "-ptx", "-o", ptx, src], check=True)
    r = subprocess.run([args.nvcc, "-arch=" + arch, "-cubin", "-Xptxas", "-v", "-o", cubin, src], check=True,
                       capture_output=True, text=True)
    regs, spills, name = {}, {}, None
    for line in r.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            name = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            regs[name] = int(m.group(1))
        m = re.search(r"(\d+) bytes spill stores", line)
        if m and name:
            spills[name] = int(m.group(1))
    sass = {}
    out = subprocess.run(["readelf", "-SW", cubin], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.search(r"\]\s+\.text\.(\w+)\s+PROGBITS\s+\w+\s+\w+\s+(\w+)", line)
        if m:
            sass[m.group(1)] = int(m.group(2), 16) // 16  # SASS instructions are 16 bytes on sm_70+
    text = open(ptx).read()
    print(f"{'kernel':52s} {'loop PTX':>8s} {'copies':>6s} {'setp':>5s} {'bra':>4s} {'mul':>4s} {'SASS':>6s} {'regs':>5s}"
          f" {'spills':>6s} {'producers PTX':>13s}")
    for m in re.finditer(r"\.entry (\w+)\(", text):
        kname = m.group(1)
        if not args.all and not kname.endswith("_tc"):
            continue
        end = text.find(".entry", m.end())
        body = text[m.end():end if end > 0 else len(text)]
        s = loop_stats(body)
        cols = (f"{s['ptx']:8d} {s['copies']:6d} {s['setp']:5d} {s['branches']:4d} {s['mul']:4d}" if s
                else f"{'-':>8s} {'-':>6s} {'-':>5s} {'-':>4s} {'-':>4s}")
        prod = loop_stats(body, producer=True) if "bar.arrive" in body else None
        prod_col = f"{prod['ptx']:13d}" if prod else f"{'-':>13s}"
        print(f"{kname:52s} {cols} {sass.get(kname, 0):6d} {regs.get(kname, 0):5d} {spills.get(kname, 0):6d} {prod_col}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The driver of bench/ddp_bench.sh (see there). Needs 2 GPUs, torch, and a built shoal."""
import argparse, json, os, re, signal, socket, struct, subprocess, sys, time

import numpy as np


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def load_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        dt = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64}[v['dtype']]
        out[k] = np.frombuffer(data[a:b], dt).reshape(v['shape']).astype(np.float64)
    return out


def weight_diff(a, b):
    """Largest |a - b| over every parameter (not optimizer state), and that over max |a|."""
    names = [k for k in a if not k.endswith(('.m', '.v', '.velocity'))]
    worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in names)
    scale = max(float(np.max(np.abs(a[k]))) for k in names)
    return dict(max_abs=worst, max_rel_to_max_weight=worst / scale)


def with_checkpoint(src, dst, ckpt, out_dir):
    text = open(src).read()
    text = re.sub(r'output:([^\]]*)\]', lambda m: f'output:{m.group(1)} checkpoint={ckpt}]', text, count=1)
    text = text.replace('path=data/mnist-10k', 'path=' + os.path.abspath('data/mnist-10k'))
    path = os.path.join(out_dir, dst)
    open(path, 'w').write(text)
    return path


def run(cmd, log, env=None, timeout=1800):
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
    open(log, 'w').write(' '.join(cmd) + '\n' + p.stdout)
    return p.returncode, p.stdout, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shoal', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--sections', default='equivalence,scaling,overlap,faults',
                    help='comma-separated: equivalence, scaling, overlap, faults')
    ap.add_argument('--no-torch', action='store_true', help='skip the PyTorch DDP runs of the scaling section')
    ap.add_argument('--models', default='mnist_cnn,wide_cnn,resnet_mnist,wide_mlp',
                    help='models of the scaling and overlap sections')
    a = ap.parse_args()
    sections = set(a.sections.split(','))
    out = a.out
    shoal = os.path.abspath(a.shoal)
    results = {}
    summary = []

    def say(line):
        print(line, flush=True)
        summary.append(line)

    # ---- equivalence ---------------------------------------------------------------------
    if 'equivalence' in sections:
        say('== equivalence: examples/mnist_cnn.mmd, 1 epoch, seed 0, global batch 64')
        runs = {
            '1gpu_a': ['--gpus', '1'],
            '1gpu_b': ['--gpus', '1'],
            '1gpu_nofuse': ['--gpus', '1', '--disable-pass', 'fuse'],
            'cpu': ['--device', 'cpu'],
            '2gpu': ['--gpus', '2'],
        }
        weights = {}
        for name, extra in runs.items():
            ckpt = os.path.join(out, f'eq_{name}.safetensors')
            pipe = with_checkpoint('examples/mnist_cnn.mmd', f'eq_{name}.mmd', ckpt, out)
            rc, text, secs = run([shoal, 'run', pipe, '--epochs', '1', '--seed', '0', '--report',
                                  os.path.join(out, f'eq_{name}.json')] + extra, os.path.join(out, f'eq_{name}.log'))
            if rc != 0:
                say(f'  {name}: FAILED (exit {rc}); see eq_{name}.log')
                continue
            weights[name] = load_safetensors(ckpt)
        eq = {}
        for other in ['1gpu_b', '1gpu_nofuse', 'cpu', '2gpu']:
            if '1gpu_a' in weights and other in weights:
                eq[f'1gpu_a vs {other}'] = weight_diff(weights['1gpu_a'], weights[other])
                say(f'  1 GPU vs {other:12s}: max |dw| {eq[f"1gpu_a vs {other}"]["max_abs"]:.3e} '
                    f'({eq[f"1gpu_a vs {other}"]["max_rel_to_max_weight"]:.3e} of max |w|)')
        if '1gpu_a vs 2gpu' in eq:
            noise = max(eq.get('1gpu_a vs 1gpu_nofuse', {}).get('max_abs', 0), eq.get('1gpu_a vs cpu', {}).get('max_abs', 0))
            eq['verdict'] = dict(noise=noise, ddp=eq['1gpu_a vs 2gpu']['max_abs'],
                                 within_noise=eq['1gpu_a vs 2gpu']['max_abs'] <= noise)
            say(f'  2 GPUs x 32 vs 1 GPU x 64 within the fp32 noise of 1-GPU runs: {eq["verdict"]["within_noise"]}')
        results['equivalence'] = eq

    # ---- scaling -------------------------------------------------------------------------
    models = [('mnist_cnn', 'examples/mnist_cnn.mmd', 64, 5), ('wide_cnn', 'bench/ddp_wide_cnn.mmd', 256, 3),
              ('resnet_mnist', 'examples/resnet_mnist.mmd', 128, 3), ('wide_mlp', 'bench/ddp_wide_mlp.mmd', 256, 3)]
    models = [m for m in models if m[0] in a.models.split(',')]
    scaling = []
    say('== scaling (samples/s over the epochs; shoal: global batch / median step time)')
    for model, path, batch, epochs in models if 'scaling' in sections else []:
        for gpus, gbatch in [(1, batch), (2, batch), (2, 2 * batch)]:
            rep = os.path.join(out, f'scale_{model}_{gpus}x{gbatch}.json')
            cmd = [shoal, 'run', path, '--epochs', str(epochs), '--seed', '0', '--batch', str(gbatch),
                   '--gpus', str(gpus), '--report', rep]
            rc, text, secs = run(cmd, rep.replace('.json', '.log'))
            row = dict(framework='shoal', model=model, gpus=gpus, global_batch=gbatch, exit=rc)
            if rc == 0:
                r = json.load(open(rep))
                row['step_ms'] = r['step_ms_median']
                row['cuda_graph'] = r.get('cuda_graph')
                row['samples_per_s'] = gbatch / r['step_ms_median'] * 1e3
                row['final_loss'] = r['epochs'][-1]['loss']
                row['test_accuracy'] = r['test_accuracy']
            scaling.append(row)
            if model in ('mnist_cnn', 'wide_cnn', 'wide_mlp') and not a.no_torch:
                tout = os.path.join(out, f'torch_{model}_{gpus}x{gbatch}.json')
                tcmd = ['python3', 'bench/ddp_torch.py', '--model', model, '--batch', str(gbatch), '--epochs',
                        str(epochs), '--out', tout]
                if gpus > 1:
                    tcmd = ['python3', '-m', 'torch.distributed.run', '--nproc_per_node', str(gpus),
                            '--master_port', str(free_port())] + tcmd[1:]
                rc, text, secs = run(tcmd, tout.replace('.json', '.log'))
                trow = dict(framework='pytorch', model=model, gpus=gpus, global_batch=gbatch, exit=rc)
                if rc == 0:
                    t = json.load(open(tout))
                    trow.update(step_ms=t['step_ms'], samples_per_s=t['samples_per_s'], final_loss=t['epoch_losses'][-1])
                scaling.append(trow)
    for row in scaling:
        if 'samples_per_s' in row:
            say(f"  {row['framework']:8s} {row['model']:12s} {row['gpus']} GPU x global batch {row['global_batch']:4d}: "
                f"{row['samples_per_s']:10.0f} samples/s  step {row['step_ms']:.3f} ms")
        else:
            say(f"  {row['framework']:8s} {row['model']:12s} {row['gpus']} GPU x {row['global_batch']}: FAILED (exit {row['exit']})")
    ratios = {}
    for fw in ('shoal', 'pytorch'):
        for model, _, batch, _ in models:
            def sps(g, b):
                for row in scaling:
                    if row['framework'] == fw and row['model'] == model and row['gpus'] == g and row['global_batch'] == b:
                        return row.get('samples_per_s')
            one, two_strong, two_weak = sps(1, batch), sps(2, batch), sps(2, 2 * batch)
            if one and two_strong and two_weak:
                ratios[f'{fw} {model}'] = dict(two_gpus_same_global_batch=two_strong / one,
                                               two_gpus_same_per_gpu_batch=two_weak / one)
                say(f'  {fw:8s} {model:12s} 2 GPUs / 1 GPU: {two_strong / one:.2f}x (same global batch), '
                    f'{two_weak / one:.2f}x (same batch per GPU)')
    for model, _, batch, _ in models:
        s, t = ratios.get(f'shoal {model}'), ratios.get(f'pytorch {model}')
        rows = {(r['framework'], r['gpus'], r['global_batch']): r.get('samples_per_s') for r in scaling if r['model'] == model}
        for g, b in [(1, batch), (2, 2 * batch)]:
            if rows.get(('shoal', g, b)) and rows.get(('pytorch', g, b)):
                say(f'  {model:12s} {g} GPU(s) x {b}: shoal / PyTorch throughput {rows[("shoal", g, b)] / rows[("pytorch", g, b)]:.2f}')
    if 'scaling' in sections:
        results['scaling'] = scaling
        results['scaling_ratios'] = ratios

    # ---- overlap -------------------------------------------------------------------------
    # The gradients' all-reduce in buckets issued during the backward pass (--bucket-mb, default
    # 1 MiB) against one bucket after it (a size above every model's gradients), 2 GPUs at the
    # same batch per GPU, same call.
    if 'overlap' in sections:
        say('== overlap: 2 GPUs, step time with the all-reduce in buckets during the backward pass vs one bucket after it')
        overlap = []
        for model, path, batch, epochs in models:
            row = dict(model=model, global_batch=2 * batch)
            for tag, mb, env in [('one_bucket', '1024', None), ('default_1MiB', None, None), ('ddp_25MiB', '25', None),
                                 ('normal_priority', None, dict(os.environ, SHOAL_COLLECTIVES_HIGH_PRIORITY='0'))]:
                rep = os.path.join(out, f'overlap_{model}_{tag}.json')
                cmd = [shoal, 'run', path, '--epochs', str(epochs), '--seed', '0', '--batch', str(2 * batch),
                       '--gpus', '2', '--report', rep] + (['--bucket-mb', mb] if mb else [])
                rc, text, secs = run(cmd, rep.replace('.json', '.log'), env=env)
                if rc == 0:
                    r = json.load(open(rep))
                    row[f'{tag}_step_ms'] = r['step_ms_median']
                    row[f'{tag}_cuda_graph'] = r.get('cuda_graph')
                    row[f'{tag}_final_loss'] = r['epochs'][-1]['loss']
                else:
                    row[f'{tag}_exit'] = rc
            overlap.append(row)
            if 'one_bucket_step_ms' in row and 'default_1MiB_step_ms' in row:
                say(f"  {model:12s} 2 GPUs x {2 * batch}: one bucket {row['one_bucket_step_ms']:.3f} ms, 1 MiB buckets "
                    f"{row['default_1MiB_step_ms']:.3f} ms ({row['default_1MiB_step_ms'] / row['one_bucket_step_ms']:.3f}x), "
                    f"25 MiB {row.get('ddp_25MiB_step_ms', float('nan')):.3f} ms, 1 MiB at normal stream priority "
                    f"{row.get('normal_priority_step_ms', float('nan')):.3f} ms; final loss "
                    f"{row['one_bucket_final_loss']:.6f} / {row['default_1MiB_final_loss']:.6f}")
            else:
                say(f'  {model:12s}: FAILED {row}')
        results['overlap'] = overlap

    # ---- faults --------------------------------------------------------------------------
    if 'faults' in sections:
        faults = {}
        say('== faults (wide CNN, 2 GPUs)')
        env = dict(os.environ, SHOAL_TEST_KILL_RANK='1:40')  # 3 epochs of 31 steps: step 40 is in epoch 2
        rc, text, secs = run([shoal, 'run', 'bench/ddp_wide_cnn.mmd', '--epochs', '3', '--gpus', '2'],
                             os.path.join(out, 'fault_launcher.log'), env=env, timeout=300)
        last = [l for l in text.splitlines() if 'error' in l]
        faults['launcher_rank_killed'] = dict(exit=rc, seconds_total=secs, errors=last[-3:])
        say(f'  launcher, rank 1 SIGKILLed at step 40: exit {rc} after {secs:.1f} s in all; {last[-1] if last else ""}')

        # Ranks started by hand (the multi-host way): kill rank 1 from outside, time rank 0's exit.
        port = str(free_port())
        procs = []
        for r in (0, 1):
            e = dict(os.environ, RANK=str(r), WORLD_SIZE='2', LOCAL_RANK=str(r), MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
            e.pop('CUDA_VISIBLE_DEVICES', None)
            procs.append(subprocess.Popen([shoal, 'run', 'bench/ddp_wide_cnn.mmd', '--epochs', '20', '--device', 'gpu'],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e))
        # Wait for training to be under way (rank 0 prints its first epoch), then kill rank 1.
        first = []
        t_start = time.time()
        for line in procs[0].stdout:
            first.append(line)
            if line.startswith('epoch 1/') or time.time() - t_start > 240:
                break
        procs[1].send_signal(signal.SIGKILL)
        t_kill = time.time()
        try:
            rest, _ = procs[0].communicate(timeout=120)
            exited = time.time() - t_kill
        except subprocess.TimeoutExpired:
            procs[0].kill()
            rest, _ = procs[0].communicate()
            exited = None
        procs[1].wait()
        open(os.path.join(out, 'fault_by_hand.log'), 'w').write(''.join(first) + rest)
        err = [l for l in rest.splitlines() if 'error' in l]
        faults['by_hand_rank1_killed'] = dict(rank0_exit=procs[0].returncode, seconds_to_exit=exited, errors=err[-3:])
        say(f'  ranks by hand, rank 1 SIGKILLed during epoch 2: rank 0 exit {procs[0].returncode} '
            f'{exited if exited is None else round(exited, 2)} s later; {err[-1] if err else ""}')

        # A wrong world size and an unreachable rendezvous.
        port = str(free_port())
        ps = []
        for r, ws in ((0, '2'), (1, '3')):
            e = dict(os.environ, RANK=str(r), WORLD_SIZE=ws, LOCAL_RANK=str(r), MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
            ps.append(subprocess.Popen([shoal, 'run', 'examples/mnist_cnn.mmd', '--device', 'gpu', '--epochs', '1'],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e))
        outs = [p.communicate(timeout=200)[0] for p in ps]
        faults['wrong_world_size'] = [dict(exit=p.returncode, message=o.strip().splitlines()[-1] if o.strip() else '')
                                      for p, o in zip(ps, outs)]
        for r, f in enumerate(faults['wrong_world_size']):
            say(f'  wrong world size, rank {r}: exit {f["exit"]}: {f["message"]}')
        e = dict(os.environ, RANK='1', WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
                 SHOAL_RENDEZVOUS_TIMEOUT='5')
        rc, text, secs = run([shoal, 'run', 'examples/mnist_cnn.mmd', '--device', 'gpu', '--epochs', '1'],
                             os.path.join(out, 'fault_unreachable.log'), env=e, timeout=120)
        faults['unreachable'] = dict(exit=rc, seconds=secs, message=text.strip().splitlines()[-1] if text.strip() else '')
        say(f'  unreachable rendezvous (timeout 5 s): exit {rc} after {secs:.1f} s: {faults["unreachable"]["message"]}')
        results['faults'] = faults

    json.dump(results, open(os.path.join(out, 'results.json'), 'w'), indent=2)
    open(os.path.join(out, 'summary.txt'), 'w').write('\n'.join(summary) + '\n')


if __name__ == '__main__':
    main()

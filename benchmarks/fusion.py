"""Quick CPU timings of the style fusion (the three adaLN-SSM levels) and, optionally, of P1 at one size, without the full `clast.bench` run.

    python benchmarks/fusion.py [--side 512] [--threads 1] [--repeats 5] [--scan torch cpp] [--e2e]

Prints the median time of the paper-width fusion `Transform` on random VGG-shaped features for each selective-scan
backend in --scan (timed in alternation, in one process; float32, and bf16 autocast where the CPU has native bf16)
and, with --e2e, P1's end-to-end / (VGG encoder + decoder) ratio of the paper-size model (random weights) for each
backend and each inference setting worth trying on this CPU (`clast.bench.cpu_candidates`).
"""
import argparse, contextlib, statistics, time
import torch
from clast.bench import FP32, bench_e2e, cpu_bf16_native, cpu_candidates, fusion_inputs, fusion_module, paper_model, prepare
from clast.ssm import resolve_backend

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--side', type=int, default=512, help='image side in pixels (the fusion sees side/4, side/8, side/16 maps)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    p.add_argument('--repeats', type=int, default=5, help='timed runs (median), after one warm-up')
    p.add_argument('--scan', nargs='+', default=['auto'], help='selective-scan backends to compare (auto, torch, cpp)')
    p.add_argument('--e2e', action='store_true', help='also P1 (end-to-end vs convolutions) of the paper-size model')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    for be in a.scan: resolve_backend(be, 'cpu')                       # fails now, with its message, if one cannot run
    cond, feats = fusion_inputs(a.side)
    mods = {be: fusion_module(backend=be) for be in a.scan}
    for m in mods.values(): m.load_state_dict(mods[a.scan[0]].state_dict())   # the same weights for every backend
    modes = [('fp32', contextlib.nullcontext)] + ([('bf16', lambda: torch.autocast('cpu', dtype=torch.bfloat16))] if cpu_bf16_native() else [])
    rows = []
    for name, ctx in modes:
        ts = {be: [] for be in a.scan}
        with torch.inference_mode(), ctx():
            for be, m in mods.items(): m(cond, feats)                  # warm-up
            for _ in range(a.repeats):
                for be, m in mods.items():
                    t0 = time.perf_counter(); m(cond, feats); ts[be].append(time.perf_counter() - t0)
        for be in a.scan:
            r = dict(what=f'fusion {a.side}² {name} scan={be}', median_s=statistics.median(ts[be]), min_s=min(ts[be]), max_s=max(ts[be]))
            rows.append(r)
            print(f"{r['what']}: median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}, {a.repeats} runs)", flush=True)
    if a.e2e:
        for be in a.scan:
            model = paper_model(**{'model.ssm_backend': be})
            for o in cpu_candidates():   # bf16 only where the CPU has it natively
                r = bench_e2e(model, a.side, o, repeats=a.repeats)
                rows.append(dict(what=f'P1 {a.side}² {o.name} scan={be}', **r))
                print(f"P1 {a.side}² {o.name} scan={be}: e2e {r['e2e_s']:.3f} s / convs {r['convs_s']:.3f} s = {r['e2e_over_convs']:.3f}; "
                      f"fusion {r['fusion_s']:.3f} s, text {r['text_s']:.3f} s", flush=True)
                prepare(model, FP32); model.to(memory_format=torch.contiguous_format)   # back to NCHW float32
    return rows

if __name__ == '__main__':
    main()

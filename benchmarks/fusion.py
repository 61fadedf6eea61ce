"""Quick CPU timings of the style fusion (the three adaLN-SSM levels) and, optionally, of P1 at one size, without the full `clast.bench` run.

    python benchmarks/fusion.py [--side 512] [--threads 1] [--repeats 5] [--e2e]

Prints the median time of the paper-width fusion `Transform` on random VGG-shaped features (float32 and bf16
autocast) and, with --e2e, P1's end-to-end / (VGG encoder + decoder) ratio of the paper-size model (random weights).
"""
import argparse, contextlib
import torch
from clast.bench import FAST_CPU, FP32, bench_e2e, fusion_inputs, fusion_module, paper_model, prepare, time_it

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--side', type=int, default=512, help='image side in pixels (the fusion sees side/4, side/8, side/16 maps)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    p.add_argument('--repeats', type=int, default=5, help='timed runs (median), after one warm-up')
    p.add_argument('--e2e', action='store_true', help='also P1 (end-to-end vs convolutions) of the paper-size model')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    m, (cond, feats) = fusion_module(), fusion_inputs(a.side)
    rows = []
    for name, ctx in (('fp32', contextlib.nullcontext), ('bf16', lambda: torch.autocast('cpu', dtype=torch.bfloat16))):
        with torch.inference_mode(), ctx():
            r = time_it(lambda: m(cond, feats), repeats=a.repeats)
        rows.append(dict(what=f'fusion {a.side}² {name}', **r))
        print(f"fusion {a.side}² {name}: median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}, {r['runs']} runs)", flush=True)
    if a.e2e:
        model = paper_model()
        for o in (FP32, FAST_CPU):
            r = bench_e2e(model, a.side, o, repeats=a.repeats)
            rows.append(dict(what=f'P1 {a.side}² {o.name}', **r))
            print(f"P1 {a.side}² {o.name}: e2e {r['e2e_s']:.3f} s / convs {r['convs_s']:.3f} s = {r['e2e_over_convs']:.3f}; "
                  f"fusion {r['fusion_s']:.3f} s, text {r['text_s']:.3f} s", flush=True)
            prepare(model, FP32); model.to(memory_format=torch.contiguous_format)   # back to NCHW float32
    return rows

if __name__ == '__main__':
    main()

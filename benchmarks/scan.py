"""CPU benchmark of the selective scan: our PyTorch backend vs the naive reference loop.

    python benchmarks/scan.py --out figures/bench/scan.json [--Ls 1024 4096 16384] [--ds 256 512] [--threads 2]

Prints a Markdown table and writes the rows (with a provenance stamp) as JSON to --out.
"""
import argparse
import torch
from clast.config import get_config, markdown_table, save_json
from clast.ssm import bench_scan

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--Ls', type=int, nargs='+', default=[1024, 4096, 16384], help='sequence lengths')
    p.add_argument('--ds', type=int, nargs='+', default=[256, 512], help='channels (d_inner)')
    p.add_argument('--n', type=int, default=16, help='state size')
    p.add_argument('--b', type=int, default=1, help='batch size')
    p.add_argument('--repeats', type=int, default=3, help='timed runs per case (median); the reference runs once')
    p.add_argument('--ref-max-L', type=int, default=4096, help='longer sequences extrapolate the reference loop linearly')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--out', default=None, help='JSON output path')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = bench_scan(Ls=a.Ls, ds=a.ds, n=a.n, b=a.b, repeats=a.repeats, ref_max_L=a.ref_max_L,
                      log=lambda r: print(f"L={r['L']} d={r['d']}: torch {r['torch_fwd_s']:.3f}/{r['torch_fwd_bwd_s']:.3f} s, "
                                          f"ref {r['ref_fwd_s']:.3f}/{r['ref_fwd_bwd_s']:.3f} s (fwd/fwd+bwd)", flush=True))
    print(markdown_table(rows, floatfmt='.3g'))
    if a.out:
        print('wrote', save_json(rows, a.out, get_config('toy'), benchmark='selective_scan_cpu', threads=a.threads))
    return rows

if __name__ == '__main__':
    main()

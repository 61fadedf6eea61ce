"""CPU benchmark of the selective scan: our PyTorch backend (and the compiled one, when built) vs the naive reference loop.

    python benchmarks/scan.py --out figures/bench/scan.json [--Ls 1024 4096 16384] [--ds 256 512] [--threads 2]
    python benchmarks/scan.py --interleave [--repeats 5] [--threads 2] [--out figures/bench/scan_cpp.json]

Prints a Markdown table and writes the rows (with a provenance stamp) as JSON to --out. `--interleave` times
'torch' against 'cpp' (build it first: `make build-scan`) in alternation, in one process, on CLAST's shapes:
the scan alone at the 512² level-0 shape (1, 128, 16, 16384) forward (inference; with contiguous (b, d, L)
inputs, and with the token-major views `Mamba` passes), forward + backward at a training shape
(8, 128, 16, 4096), and the level-0 `Mamba` block (d_model 64, 128² tokens) forward.
"""
import argparse, os, statistics, time
import torch
from clast.config import get_config
from clast.report import markdown_table, save_json
from clast.ssm import Mamba, resolve_backend, selective_scan, mamba_inputs
from clast.bench import bench_scan

INTERLEAVED = (('scan fwd, 512² level 0, (b, d, L) inputs', (1, 128, 16, 16384), False, False),
               ('scan fwd, 512² level 0, token-major views (as Mamba passes them)', (1, 128, 16, 16384), False, True),
               ('scan fwd+bwd, training shape, token-major views', (8, 128, 16, 4096), True, True))

def _scan_case(shape, backward, token_major=False):
    x = mamba_inputs(*shape)
    if token_major: x = {k: v.transpose(1, 2).contiguous().transpose(1, 2) if v.dim() == 3 else v for k, v in x.items()}
    def run(backend):
        xs = {k: v.clone().requires_grad_(backward) for k, v in x.items()}
        with torch.set_grad_enabled(backward):
            y = selective_scan(**xs, delta_softplus=True, backend=backend)
            if backward: y.backward(torch.ones_like(y))
    return run

def _block_case(d_model=64, side=128):
    torch.manual_seed(0)
    m, x = Mamba(d_model).eval(), torch.randn(1, side * side, d_model)
    def run(backend):
        m.backend = backend
        with torch.inference_mode(): m(x)
    return run

def interleaved(backends=('torch', 'cpp'), repeats=5, log=print) -> list:
    "Median seconds of each backend on each case, the backends run in alternation (one warm-up each), and the ratios to the first."
    for be in backends: resolve_backend(be, 'cpu')                      # fails now, with its message, if one cannot run
    cases = [(name, _scan_case(shape, bwd, tm), dict(shape=shape, backward=bwd)) for name, shape, bwd, tm in INTERLEAVED]
    cases.append(('Mamba block fwd, level 0 (d_model 64, 128² tokens)', _block_case(), dict(shape=(1, 128 * 128, 64), backward=False)))
    rows = []
    for name, run, info in cases:
        for be in backends: run(be)                                     # warm-up
        ts = {be: [] for be in backends}
        for _ in range(repeats):
            for be in backends:
                t0 = time.perf_counter(); run(be); ts[be].append(time.perf_counter() - t0)
        row = dict(case=name, **info, load_avg=round(os.getloadavg()[0], 2))
        for be in backends: row[f'{be}_s'], row[f'{be}_min_s'] = statistics.median(ts[be]), min(ts[be])
        for be in backends[1:]: row[f'{backends[0]}/{be}'] = row[f'{backends[0]}_s'] / row[f'{be}_s']
        rows.append(row)
        if log: log(row)
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--Ls', type=int, nargs='+', default=[1024, 4096, 16384], help='sequence lengths')
    p.add_argument('--ds', type=int, nargs='+', default=[256, 512], help='channels (d_inner)')
    p.add_argument('--n', type=int, default=16, help='state size')
    p.add_argument('--b', type=int, default=1, help='batch size')
    p.add_argument('--repeats', type=int, default=3, help='timed runs per case (median); the reference runs once')
    p.add_argument('--ref-max-L', type=int, default=4096, help='longer sequences extrapolate the reference loop linearly')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--interleave', action='store_true', help="torch vs cpp in alternation on CLAST's shapes (see above)")
    p.add_argument('--out', default=None, help='JSON output path')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.interleave:
        load0 = os.getloadavg()
        rows = interleaved(repeats=a.repeats, log=lambda r: print(r, flush=True))
        print(markdown_table(rows, floatfmt='.3g'))
        print(f"load average at the start {load0[0]:.2f}, at the end {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        if a.out: print('wrote', save_json(rows, a.out, get_config('toy'), benchmark='selective_scan_cpu_interleaved',
                                           threads=a.threads, load_avg_start=load0, load_avg_end=os.getloadavg()))
        return rows
    rows = bench_scan(Ls=a.Ls, ds=a.ds, n=a.n, b=a.b, repeats=a.repeats, ref_max_L=a.ref_max_L,
                      log=lambda r: print(f"L={r['L']} d={r['d']}: torch {r['torch_fwd_s']:.3f}/{r['torch_fwd_bwd_s']:.3f} s, "
                                          + (f"cpp {r['cpp_fwd_s']:.3f}/{r['cpp_fwd_bwd_s']:.3f} s, " if 'cpp_fwd_s' in r else '')
                                          + f"ref {r['ref_fwd_s']:.3f}/{r['ref_fwd_bwd_s']:.3f} s (fwd/fwd+bwd)", flush=True))
    print(markdown_table(rows, floatfmt='.3g'))
    if a.out:
        print('wrote', save_json(rows, a.out, get_config('toy'), benchmark='selective_scan_cpu', threads=a.threads))
    return rows

if __name__ == '__main__':
    main()

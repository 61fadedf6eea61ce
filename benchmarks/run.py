"""All CLAST benchmarks (P1-P4): a thin wrapper of `python -m clast.bench` (see nbs/13_bench.ipynb).

    python benchmarks/run.py --out figures/bench/cpu.json [--quick] [--device cuda]
"""
from clast.bench import main

if __name__ == '__main__':
    main()

"""Build the miniature world (synthetic artists, scikit-image photos) and its judge, offline.

    python data_prep/toy_world.py --profile toy      # -> data/toy/world, data/toy/models/judge
"""
import argparse
from clast.config import get_config
from clast.toyworld import build_world, judge_from_config

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--profile', default='toy', help='smoke | toy')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default=None, help='world folder (default data/<profile>/world)')
    a = ap.parse_args()
    cfg = get_config(a.profile, seed=a.seed)
    w = build_world(cfg, a.out)
    j = judge_from_config(cfg) if a.out is None else None
    print(f"world: {w.root} ({len(w.artists)} artists)" + (f"; judge held-out top-1 {j.accuracy:.3f}" if j else ''))

if __name__ == '__main__': main()

"""Export WikiArt to the image-folder layout clast trains on (`OUT/<artist-slug>/*.jpg`).

    python data_prep/wikiart.py --out data/paper/wikiart                      # all artists, from the HF hub
    python data_prep/wikiart.py --subset --out data/paper/wikiart_subset     # the authors' 14-entry list
    python data_prep/wikiart.py --from-dir ~/wikiart --out data/paper/wikiart # from a local export

Offline, it stops in seconds saying what to download. Logic lives in clast.data (nbs/02_data.ipynb).
"""
import argparse, sys
from pathlib import Path
from clast.data import export_imagefolder, wikiart_records, read_artist_list

SHARED = Path(__file__).resolve().parents[1].parent/'shared'

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='output image-folder root')
    ap.add_argument('--from-dir', default=None, help='local WikiArt export (one folder per artist) instead of the hub')
    ap.add_argument('--hub', default='huggan/wikiart', help='hub dataset name')
    ap.add_argument('--subset', action='store_true', help="only the authors' subset list (wiki_subset_authors.txt)")
    ap.add_argument('--artists', default=None, help='a file with one artist name per line (default: all artists)')
    ap.add_argument('--max-side', type=int, default=512, help='longer side of the exported images')
    a = ap.parse_args()
    lst = a.artists or (SHARED/'wiki_subset_authors.txt' if a.subset else None)
    artists = [n for n in read_artist_list(lst) if n != 'sample photographs'] if lst else None
    try: n = export_imagefolder(wikiart_records(a.from_dir or a.hub, artists), a.out, a.max_side)
    except RuntimeError as e: sys.exit(f"wikiart: {e}")
    print(f"wikiart: {n} paintings written to {a.out}")

if __name__ == '__main__': main()

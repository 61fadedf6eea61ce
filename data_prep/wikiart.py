"""Export WikiArt to the image-folder layout clast trains on (`OUT/<artist-slug>/*.jpg`).

    python data_prep/wikiart.py --out data/paper/wikiart                      # all artists, from the HF hub (huggan/wikiart)
    python data_prep/wikiart.py --subset --out data/paper/wikiart_subset     # the authors' 13-artist list (data_prep/wiki_subset_authors.txt)
    python data_prep/wikiart.py --from-dir ~/wikiart --out data/paper/wikiart # a local copy: folders per artist, or the
                                                                              # huggan/wikiart parquet shards (data/train-*.parquet)

Offline, it stops in seconds saying what to download; an export that writes nothing exits 1.
The artist lists (wiki_subset_authors.txt, wikiauthors.txt: the authors' 1119 names) sit next to this script.
Logic lives in clast.data (nbs/02_data.ipynb).
"""
import argparse, sys
from pathlib import Path
from clast.data import export_imagefolder, wikiart_records, read_artist_list

HERE = Path(__file__).resolve().parent

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='output image-folder root')
    ap.add_argument('--from-dir', default=None, help='local WikiArt copy (one folder per artist, or huggan/wikiart parquet shards) instead of the hub')
    ap.add_argument('--hub', default='huggan/wikiart', help='hub dataset name')
    ap.add_argument('--subset', action='store_true', help=f"only the authors' subset list ({HERE/'wiki_subset_authors.txt'})")
    ap.add_argument('--artists', default=None, help='a file with one artist name per line (default: all artists)')
    ap.add_argument('--max-side', type=int, default=512, help='longer side of the exported images')
    a = ap.parse_args()
    lst = a.artists or (HERE/'wiki_subset_authors.txt' if a.subset else None)
    if lst and not Path(lst).is_file(): sys.exit(f"wikiart: artist list {lst} not found")
    artists = [n for n in read_artist_list(lst) if n != 'sample photographs'] if lst else None
    src = a.from_dir or a.hub
    if a.from_dir and not Path(a.from_dir).is_dir(): sys.exit(f"wikiart: --from-dir {a.from_dir}: no such folder")
    try: n = export_imagefolder(wikiart_records(src, artists), a.out, a.max_side)
    except RuntimeError as e: sys.exit(f"wikiart: {e}")
    if n == 0:
        sys.exit(f"wikiart: 0 paintings exported from {src}" + (f" for the {len(artists)} artists of {lst}" if artists else '') +
                 "; expected folders per artist with .jpg/.png files, or huggan/wikiart parquet shards with 'image' and 'artist' columns")
    print(f"wikiart: {n} paintings written to {a.out}")

if __name__ == '__main__': main()

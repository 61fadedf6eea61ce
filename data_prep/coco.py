"""Export COCO train2017 photos to a flat folder clast reads as content (`OUT/photo/*.jpg`).

    python data_prep/coco.py --out data/paper/coco                    # from a HF hub mirror
    python data_prep/coco.py --from-dir ~/coco/train2017 --out data/paper/coco

Offline, it stops in seconds saying what to download; an export that writes nothing exits 1.
Logic lives in clast.data (nbs/02_data.ipynb).
"""
import argparse, sys
from pathlib import Path
from clast.data import export_imagefolder, coco_records

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='output folder')
    ap.add_argument('--from-dir', default=None, help='local train2017 folder instead of the hub')
    ap.add_argument('--hub', default='detection-datasets/coco', help='hub dataset name')
    ap.add_argument('--max-side', type=int, default=512, help='longer side of the exported images')
    a = ap.parse_args()
    if a.from_dir and not Path(a.from_dir).is_dir(): sys.exit(f"coco: --from-dir {a.from_dir}: no such folder")
    try: n = export_imagefolder(coco_records(a.from_dir or a.hub), a.out, a.max_side)
    except RuntimeError as e: sys.exit(f"coco: {e}")
    if n == 0: sys.exit(f"coco: 0 photos exported from {a.from_dir or a.hub}; expected .jpg files (train2017/000000xxxxxx.jpg)")
    print(f"coco: {n} photos written to {a.out}")

if __name__ == '__main__': main()

"The data_prep scripts: offline the hub paths fail fast with one line; local folders export."
import subprocess, sys, time, os
from pathlib import Path
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1'}

def test_wikiart_offline_fails_fast(tmp_path):
    t = time.time()
    r = subprocess.run([sys.executable, 'data_prep/wikiart.py', '--out', str(tmp_path/'o')], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert r.returncode != 0 and time.time() - t < 30
    assert '--from-dir' in r.stderr and len(r.stderr.strip().splitlines()) == 1

def test_coco_from_dir(tmp_path):
    src = tmp_path/'train2017'; src.mkdir()
    for i in range(3): Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(src/f'{i:012d}.jpg')
    r = subprocess.run([sys.executable, 'data_prep/coco.py', '--from-dir', str(src), '--out', str(tmp_path/'o')], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'o'/'photo').glob('*.jpg'))) == 3

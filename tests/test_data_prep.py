"The data_prep scripts: offline the hub paths fail fast with one line; local folders and parquet shards export; an empty export fails."
import subprocess, sys, time, os
from pathlib import Path
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1'}

def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=ENV)

def test_wikiart_offline_fails_fast(tmp_path):
    t = time.time()
    r = run('data_prep/wikiart.py', '--out', tmp_path/'o')
    assert r.returncode != 0 and time.time() - t < 30
    assert '--from-dir' in r.stderr and len(r.stderr.strip().splitlines()) == 1

def test_coco_from_dir(tmp_path):
    src = tmp_path/'train2017'; src.mkdir()
    for i in range(3): Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(src/f'{i:012d}.jpg')
    r = run('data_prep/coco.py', '--from-dir', src, '--out', tmp_path/'o')
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'o'/'photo').glob('*.jpg'))) == 3

def test_wikiart_parquet_and_folder(tmp_path):
    from clast.standins import write_wikiart_parquet, write_wikiart_folder
    arts = {'claude-monet': 3, 'el-greco': 2}
    write_wikiart_parquet(tmp_path/'wp', arts, 32)
    r = run('data_prep/wikiart.py', '--from-dir', tmp_path/'wp', '--out', tmp_path/'o1')
    assert r.returncode == 0, r.stderr
    assert {p.name: len(list(p.glob('*.jpg'))) for p in (tmp_path/'o1').iterdir()} == arts   # 'Unknown Artist' left out
    write_wikiart_folder(tmp_path/'wf', arts, 32)
    r = run('data_prep/wikiart.py', '--from-dir', tmp_path/'wf', '--out', tmp_path/'o2')
    assert r.returncode == 0, r.stderr
    assert {p.name: len(list(p.glob('*.jpg'))) for p in (tmp_path/'o2').iterdir()} == arts

def test_wikiart_subset_list_in_repo_and_empty_export_fails(tmp_path):
    from clast.standins import write_wikiart_folder
    assert (ROOT/'data_prep'/'wiki_subset_authors.txt').is_file() and (ROOT/'data_prep'/'wikiauthors.txt').is_file()
    write_wikiart_folder(tmp_path/'wf', {'claude-monet': 2, 'john-doe': 2, 'el-greco': 1}, 32)
    r = run('data_prep/wikiart.py', '--subset', '--from-dir', tmp_path/'wf', '--out', tmp_path/'o')
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path/'o').iterdir()) == ['claude-monet', 'el-greco']   # 'monet' in the authors' list
    (tmp_path/'none').mkdir()
    for script in ('wikiart.py', 'coco.py'):
        r = run(f'data_prep/{script}', '--from-dir', tmp_path/'none', '--out', tmp_path/f'e_{script}')
        assert r.returncode != 0 and '0 ' in r.stderr and len(r.stderr.strip().splitlines()) == 1, (script, r.stderr)

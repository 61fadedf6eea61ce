"""The `paper` profile end to end on stand-ins (random weights in the real formats, a tiny WikiArt and COCO in their real
layouts): data_prep → `clast train all --profile paper` → `clast evaluate --only 22_table1` → `clast stylize`.

It checks that the run read exactly the prepared files (artists and painting counts in run.json and in Table 1 come
from the stand-in WikiArt) and that the miniature world was never built. Nothing computed here is a result.
"""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTISTS = {'claude-monet': 4, 'el-greco': 3, 'pablo-picasso': 4}            # paintings per artist in the stand-in WikiArt
NAMES = ['Claude Monet', 'El Greco', 'Pablo Picasso']

CPU = {}   # CPU seconds of each command (user + system): on a loaded machine its wall time says little

def _run(args, env, timeout=900):
    import resource
    t, ru = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout)
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[' '.join(map(str, args[:3]))] = round(ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime, 1)
    return r, time.time() - t

@pytest.fixture(scope='module')
def paper_run(tmp_path_factory):
    from clast.standins import (write_wikiart_parquet, write_wikiart_folder, write_coco, write_vgg_normalised, write_open_clip,
                                write_torchvision_vgg16)
    tmp = tmp_path_factory.mktemp('paper')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'CLAST_OFFLINE': '1', 'TORCH_HOME': str(tmp/'torch'), 'HF_HOME': str(tmp/'hf'),
           'OMP_NUM_THREADS': '2', 'PYTHONWARNINGS': 'ignore'}
    times = {}
    # the real layouts: huggan/wikiart parquet shards and an artist image folder, COCO train2017
    write_wikiart_parquet(tmp/'hf_wikiart', ARTISTS, size=150)
    write_wikiart_folder(tmp/'wikiart_folders', ARTISTS, size=150)
    write_coco(tmp/'coco_zip', 8, size=150)
    for name, args in (('wikiart_parquet', ['data_prep/wikiart.py', '--from-dir', tmp/'hf_wikiart', '--out', tmp/'wikiart']),
                       ('wikiart_folder', ['data_prep/wikiart.py', '--from-dir', tmp/'wikiart_folders', '--out', tmp/'wikiart2']),
                       ('coco', ['data_prep/coco.py', '--from-dir', tmp/'coco_zip'/'train2017', '--out', tmp/'coco'])):
        r, times[name] = _run(args, env)
        assert r.returncode == 0, (name, r.stderr[-2000:])
    # random-weight stand-ins in the real formats
    vgg = write_vgg_normalised(tmp/'assets'/'vgg_normalised.pth')
    clip = write_open_clip(tmp/'assets'/'ViT-B-32-quickgelu.safetensors')
    write_torchvision_vgg16(tmp/'torch'/'hub'/'checkpoints'/'vgg16-397923af.pth')      # LPIPS (net='vgg') and the judge
    ov = [f'data.wikiart={tmp/"wikiart"}', f'data.coco={tmp/"coco"}', f'vgg.weights={vgg}', f'clip.pretrained={clip}',
          f'paths.data={tmp/"data"}', f'paths.runs={tmp/"runs"}', f'paths.figures={tmp/"figures"}', 'train.device=cpu',
          'data.heldout_photos=1', 'eval.n_photos=1', 'data.eval_size=64', 'data.num_workers=1',
          'data.judge_steps=2', 'data.judge_batch=2', 'data.judge_size=64',
          'exp.adain_iters=2', 'exp.clipstyler_steps=1', 'exp.ablation_iters=0',   # no fusion-ablation rows: they retrain stage 2
          'eval.seconds_warmup=0']
    for st in ('stage1', 'stage2'):
        ov += [f'train.{st}.iters=2', f'train.{st}.batch_size=2', f'train.{st}.load_size=144', f'train.{st}.crop_size=128',
               f'train.{st}.log_every=1', f'train.{st}.ckpt_every=2']
    r, times['train'] = _run(['-m', 'clast.cli', 'train', 'all', '--profile', 'paper', *ov], env)
    assert r.returncode == 0, r.stderr[-3000:]
    r2, times['evaluate'] = _run(['-m', 'clast.cli', 'evaluate', '--profile', 'paper', '--only', '22_table1', *ov], env)
    assert r2.returncode == 0, r2.stderr[-3000:]
    s2 = tmp/'runs'/'paper'/'train'/'stage2'/'model.safetensors'
    photo = next((tmp/'coco'/'photo').glob('*.jpg'))
    r3, times['stylize'] = _run(['-m', 'clast.cli', 'stylize', photo, '--checkpoint', s2, '--style', 'Claude Monet', '--profile', 'paper',
                                 '-o', tmp/'out', '--device', 'cpu'], env)
    assert r3.returncode == 0, r3.stderr[-3000:]
    print('wall seconds:', times, 'cpu seconds:', CPU)
    return tmp, ov, env, times

def test_prepared_layouts(paper_run):
    tmp = paper_run[0]
    for d in ('wikiart', 'wikiart2'):   # parquet shards and artist folders export the same artists and counts ('Unknown Artist' dropped)
        assert {p.name: len(list(p.glob('*.jpg'))) for p in (tmp/d).iterdir()} == ARTISTS
    assert len(list((tmp/'coco'/'photo').glob('*.jpg'))) == 8

def test_run_read_the_prepared_files(paper_run):
    tmp = paper_run[0]
    for st in ('stage1', 'stage2'):
        info = json.loads((tmp/'runs'/'paper'/'train'/st/'run.json').read_text())
        d = info['data']
        assert d['kind'] == 'real' and d['artists'] == NAMES and str(tmp/'wikiart') in d['wikiart'], d
        assert [a + b for a, b in zip(d['paintings_train'], d['paintings_test'])] == [ARTISTS[s] for s in sorted(ARTISTS)]
        assert d['photos_train'] + d['photos_test'] == 8 and d['photos_test'] == 1
    assert json.loads((tmp/'runs'/'paper'/'train'/'stage2'/'run.json').read_text())['artists'] == NAMES
    assert not (tmp/'data'/'paper'/'world').exists() and not (ROOT/'data'/'paper'/'world').exists()   # the world was never built

def test_tables(paper_run):
    tmp = paper_run[0]
    t1 = json.loads((tmp/'figures'/'paper'/'table1.json').read_text())
    assert t1['_meta']['profile'] == 'paper' and not t1['_meta']['miniature'] and t1['_meta']['artists'] == NAMES
    rows = {k: v for k, v in t1.items() if k != '_meta'}
    assert set(rows) == {'CLAST (text)', 'CLAST (image)', 'AdaIN (image)', 'CLIPstyler-style (text)'}
    for m, r in rows.items():
        assert sorted(r['deception_per_artist']) == NAMES if 'deception_per_artist' in r else True
        for k in ('clip_content', 'clip_style', 'ssim', 'vgg_content', 'deception', 'judge_top1', 'seconds_per_image'): assert k in r, (m, k)
        assert 0 <= r['judge_top1'] <= 1
    t2 = json.loads((tmp/'figures'/'paper'/'table2.json').read_text())
    assert all('data.aesthetic_head' in r['aesthetic'] for k, r in t2.items() if k != '_meta')   # says why there is no number
    judge = json.loads((tmp/'data'/'paper'/'models'/'real_judge'/'judge.json').read_text())
    assert judge['artists'] == NAMES and judge['n_heldout'] == sum(json.loads((tmp/'runs'/'paper'/'train'/'stage2'/'run.json').read_text())['data']['paintings_test'])

def test_stylized(paper_run):
    tmp = paper_run[0]
    from PIL import Image
    out = list((tmp/'out').glob('*_claude-monet.png'))
    assert len(out) == 1 and min(Image.open(out[0]).size) > 0

def test_missing_data_fails_fast(paper_run):
    tmp, ov, env, _ = paper_run
    keep = [o for o in ov if not o.startswith(('data.wikiart', 'data.coco'))]
    r, secs = _run(['-m', 'clast.cli', 'train', 'all', '--profile', 'paper', *keep, f'paths.data={tmp/"data_empty"}'], env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and 'data.wikiart' in lines[0] and 'data_prep/wikiart.py' in lines[0], r.stderr
    assert secs < 60 and not (tmp/'data_empty'/'paper'/'world').exists()
    r, _ = _run(['-m', 'clast.cli', 'train', 'all', '--profile', 'paper', *[o for o in ov if not o.startswith('vgg.weights')],
                 f'vgg.weights={tmp/"nowhere.pth"}'], env)
    assert r.returncode == 2 and 'vgg.weights' in r.stderr and 'SPEC' not in r.stderr, r.stderr

def test_world_fig2_reads_the_heldout_split(paper_run):
    "20_world (Fig. 2b/2c) under the paper profile: the stand-in WikiArt's held-out paintings of its artists, its held-out photo, the cached judge."
    tmp, ov, env, _ = paper_run
    clip = next(o for o in ov if o.startswith('clip.pretrained=')).split('=', 1)[1]
    judge_file = tmp/'data'/'paper'/'models'/'real_judge'/'judge.json'
    mtime = judge_file.stat().st_mtime_ns
    # SigLIP's section read from a stand-in file too (a random ViT-B-16-SigLIP is 800 MB; a missing one is tested in 04_clip)
    r, secs = _run(['-m', 'clast.chain', '--profile', 'paper', '--only', '^20_world', *ov,
                    'siglip.model=ViT-B-32-quickgelu', f'siglip.pretrained={clip}'], env)
    assert r.returncode == 0, r.stderr[-3000:]
    w = json.loads((tmp/'figures'/'paper'/'world.json').read_text())
    data = json.loads((tmp/'runs'/'paper'/'train'/'stage2'/'run.json').read_text())['data']
    judge = json.loads(judge_file.read_text())
    assert w['_meta']['profile'] == 'paper' and w['data']['kind'] == 'real' and 'skipped' not in w
    assert w['artists'] == NAMES and sorted(w['clip_per_artist']) == NAMES and sorted(w['siglip_per_artist']) == NAMES
    assert w['n_test_paintings_per_artist'] == data['paintings_test'] and w['n_test_paintings'] == judge['n_heldout'] == sum(data['paintings_test'])
    assert w['n_test_photos'] == data['photos_test'] == 1
    assert w['classifier_top1'] == judge['heldout_top1'] and judge_file.stat().st_mtime_ns == mtime   # 22_table1's judge, reused
    assert w['siglip_missing'] is None and w['siglip_zero_shot_top1'] == w['clip_zero_shot_top1']     # the same stand-in weights
    for k in ('clip_zero_shot_top1', 'photo_vs_painting_acc', 'siglip_photo_vs_painting_acc'): assert 0 <= w[k] <= 1, k
    assert str(tmp) not in json.dumps({k: v for k, v in w.items() if k != '_meta'})                     # no local paths
    assert all((tmp/'figures'/'paper'/f).stat().st_size > 0 for f in ('fig2_correlation.png', 'fig2_accuracy.png'))
    assert not (tmp/'data'/'paper'/'world').exists() and not (ROOT/'data'/'paper'/'world').exists()   # the world was never built
    print('20_world seconds:', round(secs, 1))

def test_experiment_notebooks_on_real_data(paper_run):
    "24_ablations … 27_user_study under the paper profile: the stand-in WikiArt's artists and split, no world; what cannot be computed says why."
    tmp, ov, env, _ = paper_run
    # a missing data folder stops the chain in seconds, in one line, before any notebook starts
    keep = [o for o in ov if not o.startswith('data.wikiart')]
    r, secs = _run(['-m', 'clast.chain', '--profile', 'paper', '--only', '^2[4-7]_', *keep, f'paths.runs={tmp/"runs_empty"}'], env)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and 'data.wikiart is not set' in lines[0], r.stderr
    assert not (tmp/'runs_empty').exists() and CPU['-m clast.chain --profile'] < 30, CPU   # seconds of CPU (wall time on a loaded machine says little)
    r, secs = _run(['-m', 'clast.chain', '--profile', 'paper', '--only', '^2[4-7]_', *ov, 'exp.video_frames=3'], env)
    assert r.returncode == 0, r.stderr[-3000:]
    fig = tmp/'figures'/'paper'
    data = json.loads((tmp/'runs'/'paper'/'train'/'stage2'/'run.json').read_text())['data']
    js = {n: json.loads((fig/f'{n}.json').read_text())
          for n in ('table3_loss_ablation', 'table4_fusion_ablation', 'video', 'failures', 'user_study')}
    for n, j in js.items(): assert j['_meta']['profile'] == 'paper' and not j['_meta']['miniature'], n
    # 24: exp.ablation_iters=0 trains no row, and both tables say so
    for n in ('table3_loss_ablation', 'table4_fusion_ablation'): assert 'exp.ablation_iters=0' in js[n]['skipped'] and not js[n]['rows'], n
    # 25: the clip is a held-out COCO photo at data.eval_size, every method scored for every stand-in artist
    v = js['video']
    assert v['artists'] == NAMES and v['data_kind'] == 'real' and v['size'] == 64 and v['n_frames'] == 3
    assert set(v['rows']) == {'input clip', 'CLAST text', 'CLAST image', 'AdaIN (per frame)', 'control: new painting per frame'}
    assert all(len(r['per_artist_error']) == (1 if m == 'input clip' else len(NAMES)) for m, r in v['rows'].items())
    # 26: the scarce artist is the one with the fewest training paintings of the split (not the world's last artist)
    f = js['failures']
    n_train = data['paintings_train']
    assert f['artists'] == NAMES and f['data_kind'] == 'real' and f['scarce_skipped'] is None
    assert f['scarce_artist'] == NAMES[n_train.index(min(n_train))] == 'El Greco' and f['scarce']['train_paintings'] == min(n_train)
    assert [r['train_paintings'] for r in f['per_artist']] == n_train and [r['scarce'] for r in f['per_artist']] == [False, True, False]
    assert f['clip'] == 'CLIP ViT-B-32-quickgelu' and f['context_length'] == 77 and f['n_photos'] == 1
    # 27: a questionnaire on the stand-in artists, no scores until participants answer
    u = js['user_study']
    from clast.study import NO_ANSWERS
    assert u['artists'] == NAMES and u['data_kind'] == 'real' and u['status'] == NO_ANSWERS and u['mos'] is None
    assert u['n_questions'] == len(NAMES) * 3 and 'WikiArt' in (tmp/'runs'/'paper'/'user_study'/'questionnaire.html').read_text()
    from PIL import Image
    for png in ('fig7_video.png', 'fig8_failures.png', 'fig6_user_study.png'): assert Image.open(fig/png).text['profile'] == 'paper', png
    assert not (tmp/'data'/'paper'/'world').exists() and not (ROOT/'data'/'paper'/'world').exists()   # the world was never built
    print('24-27 seconds:', round(secs, 1), CPU)

"""The whole experiment chain, end to end, in the `smoke` profile (seconds per notebook).

This is what proves in CI that `make reproduce` works: every nbs/2x notebook runs through papermill in order,
and the artefacts the issues promise exist with their keys and provenance stamp.
"""
import json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
# artefact -> keys it must hold; checked when the notebook that writes it is in the chain
EXPECTED = {
    '20_world.ipynb': {'world.json': ['clip_zero_shot_top1', 'siglip_zero_shot_top1', 'photo_vs_painting_acc', 'classifier_top1', 'n_artists', 'seconds']},
    '21_train.ipynb': {'train.json': ['stage1_ssim', 'stage2_deception_text', 'stage2_deception_image', 'stage2_ssim_content', 'n_artists', 'seconds']},
    '22_table1.ipynb': {'table1.json': [], 'table1.md': None, 'fig4_deception_per_artist.png': None},
    '23_figures.ipynb': {'fig5_grid.png': None, 'fig_mixing.png': None, 'fig_alpha.png': None},
    '24_ablations.ipynb': {'table3_loss_ablation.json': [], 'table4_fusion_ablation.json': [], 'table4_learning_curves.png': None},
    '25_video.ipynb': {'video.json': [], 'fig7_video.png': None},
    '26_failures.ipynb': {'failures.json': [], 'fig8_failures.png': None},
    '27_user_study.ipynb': {'user_study.json': [], 'fig6_user_study.png': None},
}
# keyed tables: every row must hold these
ROW_KEYS = {'table1.json': {'clip_content', 'clip_style', 'ssim', 'deception', 'seconds_per_image'},
            'table3_loss_ablation.json': {'clip_content', 'clip_style', 'ssim', 'deception_text', 'deception_image'},
            'table4_fusion_ablation.json': {'clip_style', 'seconds_to_target', 'fusion_ms_per_image', 'params_fusion'}}
N_ROWS = {'table1.json': 6, 'table3_loss_ablation.json': 6, 'table4_fusion_ablation.json': 6}

@pytest.fixture(scope='module')
def smoke_chain():
    from clast.chain import run_chain, chain_notebooks
    from clast.config import get_config
    nbs = chain_notebooks(ROOT/'nbs')
    assert nbs, "no experiment notebooks (nbs/2x_*.ipynb) in the chain"
    import os, shutil; cwd = os.getcwd(); os.chdir(ROOT)
    shutil.rmtree(ROOT/get_config('smoke').figures_dir, ignore_errors=True)   # no stale artefact can pass for a new one
    try: times = run_chain('smoke', seed=0)
    finally: os.chdir(cwd)
    return nbs, times, ROOT/get_config('smoke').figures_dir

def test_every_notebook_ran(smoke_chain):
    nbs, times, figs = smoke_chain
    assert sorted(times) == sorted(p.name for p in nbs)
    chain = json.loads((figs/'chain.json').read_text())
    assert chain['_meta']['profile'] == 'smoke' and set(chain['notebooks']) == set(times)

def test_artefacts_have_keys_and_stamp(smoke_chain):
    nbs, times, figs = smoke_chain
    for nb, arts in EXPECTED.items():
        if nb not in times: continue
        for art, keys in arts.items():
            assert (figs/art).is_file(), f"{nb} did not write {art}"
            if not art.endswith('.json'): continue
            doc = json.loads((figs/art).read_text())
            assert doc['_meta']['profile'] == 'smoke' and doc['_meta']['commit'], art
            for k in keys: assert k in doc, f"{art} lacks {k}"
            if art in ROW_KEYS:
                rows = {k: v for k, v in doc.items() if k != '_meta'}
                assert len(rows) == N_ROWS[art], (art, list(rows))
                for m, r in rows.items(): assert ROW_KEYS[art] <= set(r), (art, m)
    pngs = list(figs.glob('*.png'))
    for p in pngs:
        from PIL import Image
        assert Image.open(p).text.get('profile') == 'smoke', p

def test_published_notebooks_show_their_figures(smoke_chain):
    "Each executed notebook is published next to the figures, outputs kept: every PNG it wrote is an image output in it."
    import nbformat
    nbs, times, figs = smoke_chain
    for nb in times:
        pub = nbformat.read(figs/'notebooks'/nb, as_version=4)
        assert all(c.get('execution_count') is None for c in pub.cells if c.cell_type == 'code'), nb
        images = sum('image/png' in o.get('data', {}) for c in pub.cells if c.cell_type == 'code' for o in c.outputs)
        n_png = sum(a.endswith('.png') for a in EXPECTED.get(nb, {}))
        assert images >= n_png, (nb, images, n_png)

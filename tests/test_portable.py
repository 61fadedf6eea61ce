"""Portable checkpoints (nbs/08_model.ipynb, issue #21): a checkpoint is one self-contained file that stylizes the
same bytes from any folder and from a copy, with the asset files it was built from deleted; its config names no file
of this machine; older checkpoints of ours load where their assets are and are refused in one line elsewhere. The
assets here are stand-ins in the real formats: a VGG in the vgg_normalised.pth layout and a mini CLIP saved as open_clip
saves one (weights + open_clip_config.json), both with seeded random weights."""
import hashlib, json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLAST_BIN = Path(sys.executable).parent/'clast'
torch.set_num_threads(2)


def sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _strings(o):
    if isinstance(o, dict): return [s for v in o.values() for s in _strings(v)]
    if isinstance(o, list): return [s for v in o for s in _strings(v)]
    return [o] if isinstance(o, str) else []


def _absolute(o): return [s for s in _strings(o) if s.startswith(('/', '~')) or (len(s) > 2 and s[1] == ':')]


def vgg_file(path, width: float, seed: int = 0) -> Path:
    "A random-weight VGG-19 in the vgg_normalised.pth layout (a plain state dict keyed by stack index, all 53 modules)."
    from clast.vgg import vgg19_features
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vgg19_features(width).state_dict(), path)
    return path


def mini_clip_file(folder, ccfg, seed: int = 0) -> Path:
    "A random-weight mini CLIP saved as `clast.clip.save_mini_clip` (and open_clip's hub layout) has it: weights + open_clip_config.json."
    import open_clip
    from clast.clip import register_mini_config, mini_model_config, save_mini_clip, quiet
    register_mini_config('clast-mini-clip', mini_model_config(ccfg))
    torch.manual_seed(seed)
    with quiet(): m = open_clip.create_model('clast-mini-clip')
    return save_mini_clip(m, ccfg, folder, {'key': 'stand-in'})


@pytest.fixture(autouse=True)
def _restore_mini_registry():
    yield
    from clast.clip import register_mini_config, mini_model_config
    from clast.config import ClipCfg
    register_mini_config('clast-mini-clip', mini_model_config(ClipCfg()))


def cli(args, cwd, home):
    "`clast ARGS` in a subprocess run from `cwd`, with CLAST_HOME=`home` and no network."
    exe = [str(CLAST_BIN)] if CLAST_BIN.exists() else [sys.executable, '-m', 'clast.cli']
    env = {**os.environ, 'CLAST_HOME': str(home), 'CLAST_OFFLINE': '1', 'HF_HUB_OFFLINE': '1'}
    return subprocess.run(exe + list(map(str, args)), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_smoke_checkpoint_stylizes_the_same_bytes_anywhere(tmp_path, monkeypatch, capsys):
    from clast.config import get_config, ClipCfg, save_config
    from clast.model import CLAST, read_header, state_without_clip
    from safetensors.torch import save_file
    made = tmp_path/'made'                        # the folder the model was made in, with its assets under data/
    assets = made/'data'/'smoke'/'models'
    cfg = get_config('smoke', {'paths.data': str(made/'data'), 'paths.runs': str(made/'runs'),
                               'vgg.weights': str(vgg_file(assets/'vgg_normalised.pth', 0.25)),
                               'clip.pretrained': str(mini_clip_file(assets/'mini_clip', ClipCfg()))})
    model = CLAST.from_config(cfg).eval()
    ckpt = model.save(made/'runs'/'model.safetensors')
    old = tmp_path/'old'; old.mkdir()              # the same model in the format-1 layout: no CLIP inside, config in the .json
    save_file(state_without_clip(model), str(old/'old.safetensors'), metadata={'format': 'clast'}); save_config(cfg, old/'old.json')
    x = torch.rand(1, 3, 40, 56)
    test_out = model.stylize(x, 'Odile Pointel')
    assert torch.equal(CLAST.load(old/'old.safetensors').stylize(x, 'Odile Pointel'), test_out)   # its assets are here: it loads

    h = read_header(ckpt)
    assert h['embedded'] == ['vgg', 'clip'] and _absolute(h['config']) == [] and _absolute(json.loads(ckpt.with_suffix('.json').read_text())) == []
    assert h['config']['vgg']['weights'] == 'embedded' and h['config']['clip']['pretrained'] == 'embedded'

    photo = tmp_path/'photo.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(photo)
    from clast.cli import main
    monkeypatch.chdir(made)
    assert main(['stylize', str(photo), '--style', 'Odile Pointel', '--checkpoint', str(ckpt), '-o', str(made/'out'), '--threads', '2']) == 0
    first = made/'out'/'photo_odile-pointel.png'
    capsys.readouterr()

    moved = tmp_path/'moved'; moved.mkdir()
    shutil.copy(ckpt, moved/'copy.safetensors')   # the .safetensors alone
    keep = tmp_path/'first.png'; shutil.copy(first, keep)
    shutil.rmtree(made)                            # the original checkpoint, its .json and every asset file are gone
    elsewhere = tmp_path/'elsewhere'; elsewhere.mkdir()
    r2 = cli(['stylize', photo, '--style', 'Odile Pointel', '--checkpoint', moved/'copy.safetensors', '-o', 'out', '--threads', '2'],
             elsewhere, tmp_path/'home2')
    assert r2.returncode == 0, r2.stderr
    assert sha(elsewhere/'out'/'photo_odile-pointel.png') == sha(keep)                    # byte-identical
    assert sorted(p.name for p in elsewhere.iterdir()) == ['out'] and not (tmp_path/'home2').exists()   # nothing else written
    assert r2.stdout.strip() == f"{photo} -> out/photo_odile-pointel.png"                  # only the result lines, no warnings
    assert r2.stderr.strip() == "clast: 1 done, 0 failed; outputs in out", r2.stderr

    monkeypatch.chdir(elsewhere); monkeypatch.setenv('CLAST_HOME', str(tmp_path/'home3'))
    code = main(['stylize', str(photo), '--style', 'Odile Pointel', '--checkpoint', str(old/'old.safetensors'), '-o', 'out3'])
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith('clast: error:')]
    assert code == 2 and len(lines) == 1 and 'old.safetensors' in lines[0] and 'format 1' in lines[0], err   # its assets are gone
    assert 'Traceback' not in err and not (tmp_path/'home3').exists()


def test_newer_format_refused_in_one_line(tmp_path):
    from clast.model import CLAST, CheckpointError
    from safetensors.torch import save_file
    p = tmp_path/'future.safetensors'
    save_file({'w': torch.zeros(1)}, str(p), metadata={'clast': json.dumps({'format': 99})})
    with pytest.raises(CheckpointError, match='format 99 is newer'): CLAST.load(p)


def test_paper_shaped_standin_is_self_contained(tmp_path, monkeypatch):
    "Paper profile (full-width VGG from a vgg_normalised.pth file, the authors' adapters, fusion and decoder); CLIP from a local weights file (a mini CLIP with the paper's 512-wide embedding, to keep the test small)."
    from clast.config import get_config, ClipCfg
    from clast.model import CLAST, read_header
    src = tmp_path/'assets'
    ccfg = ClipCfg(embed_dim=512, image_size=224)
    cfg = get_config('paper', {'paths.data': str(tmp_path/'data'), 'vgg.weights': str(vgg_file(src/'vgg_normalised.pth', 1.0, seed=1)),
                               'clip.model': 'clast-mini-clip', 'clip.embed_dim': '512', 'clip.image_size': '224',
                               'clip.pretrained': str(mini_clip_file(src/'clip', ccfg, seed=2))})
    model = CLAST.from_config(cfg).eval()
    assert getattr(model.encoder.vgg.slice5, '42').weight.shape == (512, 512, 3, 3)        # the real VGG-19 width
    ckpt = model.save(tmp_path/'paper'/'model.safetensors')
    j = json.loads(ckpt.with_suffix('.json').read_text())
    assert _absolute(j) == [] and j['vgg']['weights'] == 'embedded' and j['clip']['pretrained'] == 'embedded'
    assert _absolute(read_header(ckpt)['config']) == []
    x = torch.rand(1, 3, 48, 64)
    ref = model.stylize(x, 'Claude Monet')
    shutil.rmtree(src)                                                                         # neither asset file is left
    other = tmp_path/'other'; other.mkdir(); monkeypatch.chdir(other)
    back = CLAST.load(ckpt)
    assert torch.equal(back.stylize(x, 'Claude Monet'), ref)
    assert list(other.iterdir()) == [] and not (tmp_path/'data').exists()


# ---------------------------------------------------------------- SigLIP's tokenizer, offline
def test_siglip_tokenizer_missing_is_one_line(monkeypatch):
    from clast.clip import get_tokenizer, load_clip, TokenizerError
    import time
    monkeypatch.setitem(sys.modules, 'transformers', None)          # an install without the siglip extra
    t0 = time.time()
    with pytest.raises(TokenizerError) as e: load_clip('ViT-B-16-SigLIP', '')
    msg = str(e.value)
    assert time.time() - t0 < 5 and '\n' not in msg
    assert "pip install 'clast[siglip]'" in msg and 'paths.tokenizer=FOLDER' in msg and 'timm/ViT-B-16-SigLIP' in msg


def test_siglip_local_tokenizer_folder(tmp_path, monkeypatch):
    "A local tokenizer folder as `save_pretrained` writes one (tokenizer.json + tokenizer_config.json), a stand-in with a 9-word vocabulary."
    pytest.importorskip('transformers', reason="the siglip extra (pip install 'clast[siglip]') is not installed here")
    from tokenizers import Tokenizer, models, pre_tokenizers, normalizers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast
    from clast.clip import get_tokenizer, load_clip, TokenizerError
    words = ['<pad>', '</s>', '<unk>', 'a', 'painting', 'by', 'claude', 'monet', 'photo']
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token='<unk>'))
    tk.normalizer, tk.pre_tokenizer = normalizers.Lowercase(), pre_tokenizers.Whitespace()
    tk.post_processor = TemplateProcessing(single='$A </s>', special_tokens=[('</s>', 1)])
    folder = tmp_path/'siglip-tokenizer'
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token='<pad>', eos_token='</s>', unk_token='<unk>').save_pretrained(folder)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    ids = get_tokenizer('ViT-B-16-SigLIP', tokenizer=str(folder))(['A painting by Claude Monet'])
    assert tuple(ids.shape) == (1, 64) and ids[0, :7].tolist() == [3, 4, 5, 6, 7, 1, 0]   # the words we wrote, EOS, padding
    with pytest.raises(TokenizerError, match='paths.tokenizer=FOLDER'): get_tokenizer('ViT-B-16-SigLIP')   # offline, no folder
    assert load_clip('ViT-B-16-SigLIP', '', tokenizer=str(folder / 'tokenizer.json')).encode_text(['a photo']).shape == (1, 768)

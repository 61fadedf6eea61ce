"""Robustness of the `clast` command (nbs/14_cli.ipynb): every bad input is one line on stderr naming the file and
the fix, no traceback, exit code 2 at the end, the rest of the batch still done, nothing half-written, inputs never
overwritten, same input + seed + checkpoint = same bytes. A tiny `smoke` CLAST keeps the file fast."""
import hashlib, io, os, pickle, struct, subprocess, sys, zlib
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

from clast.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLAST_BIN = Path(sys.executable).parent/'clast'
STYLE = 'Odile Pointel'
SLUG = 'odile-pointel'
torch.set_num_threads(2)


@pytest.fixture(scope='session')
def ckpt(tmp_path_factory):
    "A randomly initialised smoke-profile CLAST saved once per session (safetensors + its config)."
    from clast.config import get_config
    from clast.model import CLAST
    torch.manual_seed(0)
    model = CLAST.from_config(get_config('smoke'))
    path = tmp_path_factory.mktemp('ckpt')/'smoke.safetensors'
    model.save(path)
    return path


def sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def rgb(path, w=48, h=40, seed=0):
    "A random RGB PNG (or JPEG by suffix) of w×h."
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(a).save(path); return path


def cli(capsys, ckpt, inputs, out, *extra, style=('--style', STYLE)):
    "Run `clast stylize` in-process; return (exit code, stdout, stderr)."
    args = ['stylize', *map(str, inputs), *style, '--checkpoint', str(ckpt), '--profile', 'smoke', '-o', str(out), '--threads', '2', *extra]
    code = main(args)
    o, e = capsys.readouterr()
    return code, o, e


def error_lines(err): return [l for l in err.splitlines() if l.startswith('clast: error:')]


def assert_clean(err):
    assert 'Traceback' not in err
    import re
    for l in error_lines(err):   # one short line; file paths (long under pytest's tmp dirs) do not count
        assert '\n' not in l and len(re.sub(r'/\S+', '<path>', l)) < 400, l


def no_temp_files(d): return not [p for p in Path(d).rglob('.*') if p.is_file()]


# ---------------------------------------------------------------- formats that must work
def _rgba(p):    Image.fromarray(np.dstack([np.full((40, 48, 3), 200, np.uint8), np.tile(np.arange(48, dtype=np.uint8) * 5, (40, 1))]), 'RGBA').save(p)
def _palette(p): Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)).convert('P', palette=Image.ADAPTIVE, colors=16).save(p)
def _gray(p):    Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 48), dtype=np.uint8), 'L').save(p)
def _gray16(p):  Image.fromarray(np.random.default_rng(3).integers(0, 65535, (40, 48), dtype=np.uint16)).save(p)
def _cmyk(p):    Image.new('CMYK', (48, 40), (10, 200, 30, 5)).save(p, 'JPEG')

@pytest.mark.parametrize('name,make', [('rgba.png', _rgba), ('palette.png', _palette), ('gray.png', _gray),
                                       ('gray16.png', _gray16), ('cmyk.jpg', _cmyk)])
def test_image_modes_are_stylized(tmp_path, capsys, ckpt, name, make):
    src = tmp_path/name; make(src)
    assert Image.open(src).mode in ('RGBA', 'P', 'L', 'I;16', 'I', 'CMYK')
    code, out, err = cli(capsys, ckpt, [src], tmp_path/'out')
    assert code == 0, err
    dest = tmp_path/'out'/f'{src.stem}_{SLUG}.png'
    assert f'-> {dest}' in out
    im = Image.open(dest)
    assert im.mode == 'RGB' and im.size == (48, 40)


def test_exif_orientation_respected(tmp_path, capsys, ckpt):
    "A 60x30 JPEG tagged 'rotate 90° CW' (orientation 6) is a 30-wide, 60-tall picture; its top must be the stored left."
    a = np.zeros((30, 60, 3), np.uint8); a[:, :30] = (255, 0, 0); a[:, 30:] = (0, 0, 255)   # stored: left red, right blue
    exif = Image.Exif(); exif[0x0112] = 6
    src = tmp_path/'rot.jpg'; Image.fromarray(a).save(src, exif=exif.tobytes(), quality=95)
    from clast.cli import read_image
    x = read_image(src)
    assert tuple(x.shape) == (3, 60, 30)
    top, bottom = x[:, :25].mean((1, 2)), x[:, -25:].mean((1, 2))
    assert top[0] > 0.8 and top[2] < 0.2 and bottom[2] > 0.8 and bottom[0] < 0.2   # rotated clockwise: left half -> top
    code, out, err = cli(capsys, ckpt, [src], tmp_path/'out')
    assert code == 0, err
    assert Image.open(tmp_path/'out'/f'rot_{SLUG}.png').size == (30, 60)


# ---------------------------------------------------------------- bad files: one line each, the batch goes on
def _png_bytes(w=32, h=32):
    b = io.BytesIO(); Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(b, 'PNG'); return b.getvalue()

BAD = {
    'corrupt.png':   lambda p: p.write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(300)),
    'truncated.png': lambda p: p.write_bytes(_png_bytes(64, 64)[:400]),
    'empty.png':     lambda p: p.write_bytes(b''),
    'notes.jpg':     lambda p: p.write_text('this is not an image\n'),
}

@pytest.mark.parametrize('name', list(BAD))
def test_bad_file_is_one_line_and_batch_continues(tmp_path, capsys, ckpt, name):
    bad = tmp_path/name; BAD[name](bad)
    good = rgb(tmp_path/'good.png')
    before = sha(bad)
    code, out, err = cli(capsys, ckpt, [bad, good], tmp_path/'out')
    assert code == 2
    assert_clean(err)
    lines = error_lines(err)
    assert len(lines) == 1 and name in lines[0], err
    assert (tmp_path/'out'/f'good_{SLUG}.png').exists()                  # the other item was done
    assert not list((tmp_path/'out').glob(f'{bad.stem}_*'))              # nothing written for the bad one
    assert no_temp_files(tmp_path/'out') and sha(bad) == before


def test_tiny_image_refused_with_size_message(tmp_path, capsys, ckpt):
    src = tmp_path/'dot.png'; Image.new('RGB', (1, 1), (255, 0, 0)).save(src)
    code, out, err = cli(capsys, ckpt, [src], tmp_path/'out')
    assert code == 2 and len(error_lines(err)) == 1
    assert 'dot.png' in err and '1x1' in err and 'too small' in err
    assert_clean(err)


def _huge_png(path, w=20000, h=20000):
    "A PNG whose header says w×h: a real 1x1 PNG with the IHDR size (and CRC) patched. No gigabytes allocated."
    data = bytearray(_png_bytes(1, 1))
    assert data[12:16] == b'IHDR'
    data[16:24] = struct.pack('>II', w, h)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])) & 0xffffffff)
    path.write_bytes(bytes(data)); return path

@pytest.mark.parametrize('w,h,limit', [(20000, 20000, None),        # over PIL's own decompression-bomb limit too
                                         (4000, 3000, 10_000_000)])   # under PIL's limit: only clast's --max-pixels refuses it
def test_huge_image_refused_before_decoding(tmp_path, capsys, ckpt, monkeypatch, w, h, limit):
    "Refused from the header alone, with clast's one line (its size and --max-pixels), never decoded; the batch goes on."
    from PIL import ImageFile
    src = _huge_png(tmp_path/'huge.png', w, h)
    with monkeypatch.context() as m:
        m.setattr(Image, 'MAX_IMAGE_PIXELS', None)
        with Image.open(src) as im: assert im.size == (w, h)              # the header says w×h (the file holds one pixel)
    assert (w * h > Image.MAX_IMAGE_PIXELS) == (limit is None)            # PIL alone refuses only the first one
    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, 'load', lambda im: (decoded.append(im.size), load(im))[1])
    extra = ('--max-pixels', str(limit)) if limit else ()
    code, out, err = cli(capsys, ckpt, [src, rgb(tmp_path/'ok.png')], tmp_path/'out', *extra)
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and 'huge.png' in lines[0] and f'{w}x{h}' in lines[0] and '--max-pixels' in lines[0], err
    assert (tmp_path/'out'/f'ok_{SLUG}.png').exists()
    assert (48, 40) in decoded and (w, h) not in decoded                  # the good image was decoded, the huge one never


# ---------------------------------------------------------------- prompts
@pytest.mark.parametrize('prompt', ['', '   \t '])
def test_empty_prompt_is_one_line_error(tmp_path, capsys, ckpt, prompt):
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'out', style=('--style', prompt))
    assert code == 2 and len(error_lines(err)) == 1 and 'empty' in err
    assert_clean(err)
    assert not (tmp_path/'out').exists() or not list((tmp_path/'out').iterdir())


def test_non_ascii_prompt_works(tmp_path, capsys, ckpt):
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'out', style=('--style', 'Ödön Márffy 葛飾北斎'))
    assert code == 0, err
    assert (tmp_path/'out'/'p_odon-marffy.png').exists()


def test_long_prompt_works_with_truncation_warning(tmp_path, capsys, ckpt):
    prompt = ' '.join(['swirling blue brush strokes'] * 30)   # ~120 tokens > 77
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'out', style=('--style', prompt))
    assert code == 0, err
    assert 'warning' in err and 'ignored' in err
    assert len(list((tmp_path/'out').glob('p_*.png'))) == 1


def test_style_image_and_mix(tmp_path, capsys, ckpt):
    painting = rgb(tmp_path/'painting.png', 64, 64, seed=5)
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'out', style=('--style-image', str(painting)))
    assert code == 0, err
    assert (tmp_path/'out'/'p_painting.png').exists()
    code, out, err = cli(capsys, ckpt, [tmp_path/'p.png'], tmp_path/'out', '--alpha', '0.5', '--preserve-color',
                         style=('--mix', f'{STYLE}:0.7,Bruno Vasque:0.3'))
    assert code == 0, err
    assert (tmp_path/'out'/f'p_mix-{SLUG}70-bruno-vasque30.png').exists()


# ---------------------------------------------------------------- checkpoints
def test_unknown_checkpoint_name(tmp_path, capsys):
    code = main(['stylize', str(rgb(tmp_path/'p.png')), '--style', STYLE, '--checkpoint', 'monet-v2', '-o', str(tmp_path/'o')])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1 and 'monet-v2' in err and 'unknown checkpoint' in err
    assert_clean(err)


def test_wrong_shape_checkpoint(tmp_path, capsys, ckpt):
    from safetensors.torch import load_file, save_file
    sd = load_file(ckpt)
    k = next(k for k, v in sd.items() if v.dim() >= 2)
    sd[k] = torch.zeros(*(s + 1 for s in sd[k].shape))
    bad = tmp_path/'bad.safetensors'; save_file(sd, bad)
    for f in ckpt.parent.iterdir():        # the config/metadata saved next to the weights
        if f != ckpt and f.name.startswith(ckpt.stem): (tmp_path/f.name.replace(ckpt.stem, 'bad', 1)).write_bytes(f.read_bytes())
    code, out, err = cli(capsys, bad, [rgb(tmp_path/'p.png')], tmp_path/'out')
    assert code == 2 and len(error_lines(err)) == 1 and 'bad.safetensors' in err and 'does not fit' in err
    assert_clean(err)


def test_official_checkpoint_offline_fails_fast_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('CLAST_OFFICIAL_CKPT', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path/'cache'))
    monkeypatch.setenv('CLAST_OFFLINE', '1')
    code = main(['stylize', str(rgb(tmp_path/'p.png')), '--style', STYLE, '--checkpoint', 'official', '-o', str(tmp_path/'o')])
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1
    assert str(tmp_path/'cache'/'clast'/'wikiart_all.ckpt') in lines[0] and 'CLAST_OFFICIAL_CKPT' in lines[0]
    assert_clean(err)


class _Payload:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (self.marker, 'w'))

@pytest.mark.parametrize('suffix', ['.ckpt', '.safetensors'])
def test_pickled_checkpoint_refused(tmp_path, capsys, suffix):
    marker = tmp_path/'payload-ran'
    bad = tmp_path/f'evil{suffix}'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'callback': _Payload(str(marker))}, bad)
    code = main(['stylize', str(rgb(tmp_path/'p.png')), '--style', STYLE, '--checkpoint', str(bad), '-o', str(tmp_path/'o')])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1 and 'evil' in err and 'refused' in err
    assert not marker.exists()             # the pickle's code never ran
    assert_clean(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU is present')
def test_cuda_requested_without_gpu(tmp_path, capsys, ckpt):
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'out', '--device', 'cuda')
    assert code == 2 and len(error_lines(err)) == 1 and '--device cpu' in err


# ---------------------------------------------------------------- outputs
def test_unwritable_output_folder(tmp_path, capsys, ckpt):
    (tmp_path/'afile').write_text('x')
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'afile'/'out')
    assert code == 2 and len(error_lines(err)) == 1 and 'not writable' in err and '-o' in err
    assert_clean(err)


@pytest.mark.skipif(hasattr(os, 'geteuid') and os.geteuid() == 0, reason='root ignores permission bits')
def test_read_only_output_folder(tmp_path, capsys, ckpt):
    ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o555)
    try:
        code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], ro)
        assert code == 2 and 'not writable' in err
    finally: ro.chmod(0o755)


def test_output_equal_to_input_is_an_error_and_input_untouched(tmp_path, capsys, ckpt):
    a = rgb(tmp_path/'x.png', seed=1)
    b = rgb(tmp_path/f'x_{SLUG}.png', seed=2)          # what x.png's output would be called
    ha, hb = sha(a), sha(b)
    code, out, err = cli(capsys, ckpt, [a, b], tmp_path, '--overwrite')
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and 'x.png' in lines[0] and 'overwrite an input' in lines[0]
    assert sha(a) == ha and sha(b) == hb                # inputs never overwritten
    assert (tmp_path/f'x_{SLUG}_{SLUG}.png').exists()   # the other item was done


def test_existing_outputs_not_clobbered_and_deterministic(tmp_path, capsys, ckpt):
    src = rgb(tmp_path/'p.png'); out = tmp_path/'out'
    h_in = sha(src)
    assert cli(capsys, ckpt, [src], out, '--seed', '3')[0] == 0
    assert cli(capsys, ckpt, [src], out, '--seed', '3')[0] == 0
    first, second = out/f'p_{SLUG}.png', out/f'p_{SLUG}-1.png'
    assert first.exists() and second.exists()
    assert sha(first) == sha(second)                    # same input, seed, checkpoint -> same bytes
    first.write_bytes(b'stale')
    assert cli(capsys, ckpt, [src], out, '--seed', '3', '--overwrite')[0] == 0
    assert sha(first) == sha(second) and not (out/f'p_{SLUG}-2.png').exists()
    assert sha(src) == h_in and no_temp_files(out)


def test_failed_write_leaves_nothing_half_written(tmp_path, capsys, ckpt, monkeypatch):
    def boom(src, dst): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'replace', boom)             # the final rename fails (disk full)
    code, out, err = cli(capsys, ckpt, [rgb(tmp_path/'p.png')], tmp_path/'out')
    assert code == 2 and len(error_lines(err)) == 1 and 'No space left' in err
    assert list((tmp_path/'out').iterdir()) == []       # neither the output nor its temporary file


# ---------------------------------------------------------------- folders and videos
def test_folder_recursive_and_video(tmp_path, capsys, ckpt):
    import cv2
    d = tmp_path/'album'; (d/'sub').mkdir(parents=True)
    rgb(d/'a.png', 40, 40); rgb(d/'sub'/'b.jpg', 64, 32); (d/'readme.txt').write_text('skip me')
    v = d/'clip.mp4'
    w = cv2.VideoWriter(str(v), cv2.VideoWriter_fourcc(*'mp4v'), 8, (48, 32))
    for i in range(4): w.write(np.full((32, 48, 3), 40 * i, np.uint8))
    w.release()
    code, out, err = cli(capsys, ckpt, [d], tmp_path/'out')
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path/'out').iterdir())
    assert names == [f'a_{SLUG}.png', f'b_{SLUG}.png', f'clip_{SLUG}.mp4']
    cap = cv2.VideoCapture(str(tmp_path/'out'/f'clip_{SLUG}.mp4'))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok: break
        frames.append(f)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    assert 'audio' in err                                  # says plainly what happened to the sound
    assert out.count(' -> ') == 3


def test_reproduce_with_no_matching_notebook(capsys):
    code = main(['reproduce', '--profile', 'smoke', '--only', '^no-such-notebook$'])
    err = capsys.readouterr().err
    assert code == 2 and len(error_lines(err)) == 1 and 'no experiment notebook matches' in err


# ---------------------------------------------------------------- the installed console script
def test_console_script_help_and_errors(tmp_path):
    exe = [str(CLAST_BIN)] if CLAST_BIN.exists() else [sys.executable, '-m', 'clast.cli']
    r = subprocess.run(exe + ['stylize', '--help'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for flag in ['--style', '--style-image', '--mix', '--alpha', '--preserve-color', '--max-size', '--checkpoint',
                 '--device', '--seed', '--output', '--profile', '--overwrite']:
        assert flag in r.stdout
    r = subprocess.run(exe + ['stylize', str(tmp_path/'missing.png'), '--style', STYLE, '-o', str(tmp_path/'o'),
                              '--checkpoint', 'nonexistent-name'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and 'Traceback' not in r.stderr
    assert 'missing.png' in r.stderr and len(error_lines(r.stderr)) >= 1


def test_console_script_end_to_end(tmp_path, ckpt):
    exe = [str(CLAST_BIN)] if CLAST_BIN.exists() else [sys.executable, '-m', 'clast.cli']
    good, bad = rgb(tmp_path/'g.png'), tmp_path/'b.png'
    bad.write_bytes(b'')
    r = subprocess.run(exe + ['stylize', str(good), str(bad), '--style', STYLE, '--checkpoint', str(ckpt),
                              '--profile', 'smoke', '-o', str(tmp_path/'o'), '--threads', '2'],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert 'Traceback' not in r.stderr and len(error_lines(r.stderr)) == 1 and 'b.png' in r.stderr
    assert (tmp_path/'o'/f'g_{SLUG}.png').exists()

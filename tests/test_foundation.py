"Packaging, config, the export/clean check and the papermill chain runner."
import json, os, shutil, subprocess, sys
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).resolve().parents[1]

def test_version():
    import clast
    assert isinstance(clast.__version__, str) and clast.__version__.count('.') >= 2

def test_console_overrides_types():
    from clast.config import get_config
    c = get_config('toy', ['train.stage2.batch_size=3', 'loss.supcon=0'])
    assert c.train.stage2.batch_size == 3 and c.loss.supcon == 0.0 and isinstance(c.loss.supcon, float)

def _copy_repo(tmp):
    for d in ['nbs', 'clast', 'tools']: shutil.copytree(ROOT/d, tmp/d, ignore=shutil.ignore_patterns('__pycache__', '*.egg-info'))
    for f in ['pyproject.toml', 'README.md']: shutil.copy(ROOT/f, tmp/f)
    subprocess.run('git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm init', shell=True, cwd=tmp, check=True)

def test_unexported_notebook_edit_fails_check(tmp_path):
    _copy_repo(tmp_path)
    nbp = tmp_path/'nbs'/'00_config.ipynb'
    nb = nbformat.read(nbp, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == 'code' and c.source.startswith('#| export'))
    cell.source += '\nEDITED_BUT_NOT_EXPORTED = 1\n'
    nbformat.write(nb, nbp)
    env = {k: v for k, v in os.environ.items() if k != 'CI'}   # CI also refuses uncommitted changes; this edit is uncommitted on purpose
    r = subprocess.run([sys.executable, 'tools/check_sync.py'], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert 'clast/config.py' in r.stderr and 'FAILED' in r.stderr
    # the tree is now exported, so a second run is clean
    r2 = subprocess.run([sys.executable, 'tools/check_sync.py'], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r2.returncode == 0, r2.stderr

def _nb(cells, path):
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = dict(name='python3', display_name='Python 3', language='python')
    p = nbformat.v4.new_code_cell("profile = 'toy'\nseed = 0\noverrides = []"); p.metadata['tags'] = ['parameters']
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)

def test_chain_runs_in_order_and_names_failing_cell(tmp_path, monkeypatch):
    from clast import chain
    (tmp_path/'nbs').mkdir(); (tmp_path/'pyproject.toml').write_text('[project]\nname = "clast"\n')
    _nb(["from pathlib import Path\nPath('order.txt').open('a').write('20,' + profile)"], tmp_path/'nbs'/'20_a.ipynb')
    _nb(["from pathlib import Path\nPath('order.txt').open('a').write(';21')"], tmp_path/'nbs'/'21_b.ipynb')
    _nb(["x = 1", "raise ValueError('boom')"], tmp_path/'nbs'/'22_c.ipynb')
    _nb(["open('never.txt','w')"], tmp_path/'nbs'/'23_d.ipynb')
    (tmp_path/'nbs'/'05_lib.ipynb').write_text((tmp_path/'nbs'/'20_a.ipynb').read_text())
    monkeypatch.chdir(tmp_path)
    assert [p.name for p in chain.chain_notebooks()] == ['20_a.ipynb', '21_b.ipynb', '22_c.ipynb', '23_d.ipynb']
    with pytest.raises(chain.ChainError, match=r"22_c.ipynb failed at cell 2 .*ValueError: boom"):
        chain.run_chain('smoke', log=lambda *a: None)
    assert (tmp_path/'nbs'/'order.txt').read_text() == '20,smoke;21'
    assert not (tmp_path/'nbs'/'never.txt').exists()
    assert (tmp_path/'runs'/'smoke'/'20_a.ipynb').exists()

def test_infrastructure_written_once():
    "clast.infra imports nothing from clast, and no other module probes the network or reads the offline variables itself (one rule: `clast.infra.online`)."
    import re
    lib = ROOT/'clast'
    assert not re.search(r'^\s*(from\s+(clast\b|\.)|import\s+clast\b)', (lib/'infra.py').read_text(), re.M)
    for p in sorted(lib.glob('*.py')):
        if p.name in ('infra.py', '_modidx.py'): continue
        src = p.read_text()
        assert 'create_connection' not in src, f"{p.name}: a network probe of its own; use clast.infra.online"
        assert not re.search(r"""environ(\.get\(|\[)\s*['"](CLAST_OFFLINE|HF_HUB_OFFLINE)['"]\s*[,)]""", src), f"{p.name}: reads an offline variable itself; use clast.infra.offline"
        assert not re.search(r'hashlib\.sha256\(json\.dumps\(', src), f"{p.name}: a cache key of its own; use clast.infra.cache_key"


def _dependency_order() -> list:
    "The module order of docs/ARCHITECTURE.md's 'One dependency direction: a → b → ...' line."
    import re
    line = re.search(r'One dependency direction: (.*?)\. A module', (ROOT/'docs'/'ARCHITECTURE.md').read_text(), re.S).group(1)
    return [t.strip() for t in line.replace('\n', ' ').split('→') if not t.strip().startswith('experiments')]

def _clast_imports(src: str) -> list:
    "(line, module) of every clast module `src` imports, at module level or inside a function."
    import ast
    out = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module: out.append((node.lineno, node.module.split('.')[0]))
            elif node.module and node.module.startswith('clast.'): out.append((node.lineno, node.module.split('.')[1]))
            elif node.module == 'clast': out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split('.')[1]) for a in node.names if a.name.startswith('clast.')]
    return out

def test_imports_follow_the_architecture():
    "Every module of clast/ is in ARCHITECTURE.md's dependency line and imports only modules before it (also inside functions)."
    order = _dependency_order()
    pos = {m: i for i, m in enumerate(order)}
    mods = sorted(p.stem for p in (ROOT/'clast').glob('*.py') if not p.stem.startswith('_'))
    assert [m for m in mods if m not in pos] == [], "modules missing from docs/ARCHITECTURE.md's dependency line"
    back = [f"{m}.py:{ln} imports clast.{n}" for m in mods for ln, n in _clast_imports((ROOT/'clast'/f'{m}.py').read_text())
            if n in pos and n != m and pos[n] > pos[m]]
    assert back == [], "imports against the dependency direction:\n" + "\n".join(back)

def test_back_edge_detector():
    "The checker above finds a back-edge written any of the ways clast imports (so the test can fail)."
    src = "from clast.cli import main\ndef f():\n    from .train import x\n    import clast.bench\n"
    assert [n for _, n in _clast_imports(src)] == ['cli', 'train', 'bench']

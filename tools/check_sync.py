"""Fail (naming the files) if `nbdev-export` or `nbdev-clean` would change anything.

Notebooks in nbs/ are the source of truth; clast/*.py is generated from them. This snapshots both trees,
runs the two commands, and compares. Whatever changed is reported; the tree is left exported/cleaned so
that the fix is just to commit it.
"""
import hashlib, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bin_ = Path(sys.executable).parent

def snapshot():
    files = list((root/'clast').rglob('*.py')) + list((root/'nbs').rglob('*.ipynb'))
    files = [f for f in files if '.ipynb_checkpoints' not in f.parts]
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

def run(cmd):
    r = subprocess.run([str(bin_/cmd)], cwd=root, capture_output=True, text=True)
    if r.returncode: sys.exit(f"check-sync: `{cmd}` failed:\n{r.stdout}\n{r.stderr}")

before = snapshot()
run('nbdev-export')
after_export = snapshot()
run('nbdev-clean')
after_clean = snapshot()
readme = subprocess.run([sys.executable, str(root/'tools'/'make_readme.py'), '--check'], capture_output=True, text=True)

def diff(a, b): return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
exp, cln = diff(before, after_export), diff(after_export, after_clean)
# Also: exported files git tracks must match the notebooks as committed (catches a stale commit in CI).
git = subprocess.run(['git', 'status', '--porcelain', '--', 'clast', 'nbs'], cwd=root, capture_output=True, text=True)
dirty = [l[3:] for l in git.stdout.splitlines() if l[:2] != '??'] if git.returncode == 0 else []
msgs = []
if exp: msgs.append("nbdev-export changed these files (a notebook was edited without exporting, or a module was edited by hand; "
                    "edit the notebook, run `nbdev-export`, commit both):\n  " + "\n  ".join(exp))
if cln: msgs.append("nbdev-clean changed these notebooks (run `nbdev-clean` and commit):\n  " + "\n  ".join(cln))
if readme.returncode: msgs.append(readme.stderr.strip() or readme.stdout.strip())
if msgs:
    sys.exit("check-sync FAILED\n" + "\n".join(msgs))
if dirty and __import__('os').environ.get('CI'):
    sys.exit("check-sync FAILED: uncommitted changes after export/clean in CI:\n  " + "\n  ".join(dirty))
print(f"check-sync: nbdev-export and nbdev-clean leave {len(after_clean)} files unchanged")

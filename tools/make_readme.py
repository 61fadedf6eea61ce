"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells as fenced Python).

nbdev's own `nbdev-readme` needs Quarto; this does the same job with nbformat alone. Prints the path.
`--check` fails if README.md differs from what the notebook gives.
"""
import sys
from pathlib import Path
import nbformat

root = Path(__file__).resolve().parents[1]

def render() -> str:
    nb = nbformat.read(root/'nbs'/'index.ipynb', as_version=4)
    parts = ['<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->']
    for c in nb.cells:
        src = c.source.strip()
        if not src or src.startswith('#|'): continue
        if c.cell_type == 'markdown': parts.append(src)
        elif c.cell_type == 'code':
            parts.append('```python\n' + src + '\n```')
            for o in c.get('outputs', []):
                txt = o.get('text') or o.get('data', {}).get('text/plain')
                if txt: parts.append('```\n' + (''.join(txt) if isinstance(txt, list) else txt).rstrip() + '\n```')
                png = o.get('data', {}).get('image/png')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, dest = render(), root/'README.md'
    if '--check' in sys.argv:
        if not dest.exists() or dest.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python tools/make_readme.py` and commit")
    else:
        dest.write_text(text); print(dest)

"`pip install .` into a clean virtual environment gives an importable clast with __version__ and the console script."
import subprocess, sys, venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_wheel_installs_in_clean_venv(tmp_path):
    whl = tmp_path/'whl'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', str(ROOT), '-w', str(whl)],
                   check=True, capture_output=True)
    wheels = list(whl.glob('clast-*.whl'))
    assert len(wheels) == 1
    env = tmp_path/'env'
    venv.create(env, with_pip=True)
    py = env/'bin'/'python'
    # --no-deps: this checks our packaging, not torch's (the dependencies are declared in pyproject.toml)
    subprocess.run([str(py), '-m', 'pip', 'install', '-q', '--no-deps', str(wheels[0])], check=True, capture_output=True)
    out = subprocess.run([str(py), '-c', 'import clast, importlib.metadata as m; print(clast.__version__, m.version("clast"))'],
                         cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    assert out[0] == out[1] and out[0].count('.') >= 2
    assert (env/'bin'/'clast').exists()
    files = subprocess.run([str(py), '-c', 'import clast, pathlib; print(sorted(p.name for p in pathlib.Path(clast.__file__).parent.glob("*.py")))'],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert 'config.py' in files and 'chain.py' in files

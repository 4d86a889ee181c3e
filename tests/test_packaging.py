"""The wheel a user installs (``pip install vae_keras[dashboard]``) trains and serves the dashboard.

Marked ``wheel`` (about a minute: ``pytest -m "not wheel"`` leaves it out). The wheel is built from this
working tree (copied, so the checkout gets no build/ or egg-info), installed with ``--no-deps`` into a
fresh venv (``python -m venv --without-pip``) whose heavy dependencies (TensorFlow, Streamlit, ...) come
from the test runner's site-packages through a .pth line (a plain path: the runner's own .pth files, such
as an editable vae_keras, are not processed). Everything then runs from a folder outside the checkout,
without PYTHONPATH, and the test checks that ``vae_keras`` is imported from the venv: it fails if the
wheel misses the dashboard or the embedded data files.
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT as _ROOT

REPO_ROOT = Path(_ROOT)

pytestmark = pytest.mark.wheel

IN_THE_WHEEL = ("vae_keras/cli.py", "vae_keras/dashboard/__init__.py", "vae_keras/dashboard/app.py",
                "vae_keras/dashboard/main.py", "vae_keras/dashboard/pages/overview.py",
                "vae_keras/dashboard/logic/cards.py", "vae_keras/data_files/mnist10k.npz",
                "vae_keras/data_files/classifier-mnist-10k.weights.h5", "vae_keras/data_files/classifier-mnist-10k.json")
HEAVY = ("tensorflow", "keras", "streamlit", "altair", "pandas", "numpy", "PIL", "yaml", "tensorflow_datasets")

APPTEST = """
import json, sys
from streamlit.testing.v1 import AppTest
import vae_keras, vae_keras.dashboard
at = AppTest.from_file(str(vae_keras.dashboard.APP_PATH), default_timeout=180).run()
print(json.dumps({"package": vae_keras.__file__, "app": str(vae_keras.dashboard.APP_PATH),
                  "title": [t.value for t in at.title], "errors": [e.value for e in at.error],
                  "exceptions": [str(e.value) for e in at.exception], "images": sum(e.value.count('<img ') for e in at.html if 'class="vk-grid"' in e.value),
                  "sidebar": [m.value for m in at.sidebar.markdown]}))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_packages_of(names):
    """The folders holding the runner's installed packages ``names`` (usually one site-packages)."""
    folders = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folder = os.path.dirname(os.path.dirname(spec.origin))
            if folder not in folders:
                folders.append(folder)
    return folders


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd} exited with {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_the_wheel_trains_and_serves_the_dashboard_outside_the_checkout(tmp_path):
    start = time.monotonic()
    src, dist, venv, work = (tmp_path / d for d in ("src", "dist", "venv", "work"))
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "vae_keras", src / "vae_keras", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)])
    wheel, = dist.glob("vae_keras-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in IN_THE_WHEEL if n not in names], sorted(names)

    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python, script = venv / "bin" / "python", venv / "bin" / "vae-keras"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(site, "runner_dependencies.pth"), "w") as f:
        f.write("\n".join(site_packages_of(HEAVY)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    built = time.monotonic()

    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VAE_KERAS_MODELS_DIR")}
    proc = run([str(script), "train", "--dataset", "mnist-10k", "--epochs", "1", "--hidden", "16", "--latent-dim", "2",
                "--eval-iw-samples", "2", "--verbose", "0", "--out", "models", "--name", "wheel"], cwd=work, env=env)
    assert "Exported models/wheel/1" in proc.stdout, proc.stdout
    trained = time.monotonic()

    port = free_port()
    log = open(tmp_path / "dashboard.log", "wb")
    server = subprocess.Popen([str(script), "dashboard", "--models-dir", "models", "--port", str(port)], cwd=work, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The installed app, rendered by AppTest (while the server starts): the model trained above, its pictures.
        shown = json.loads(run([str(python), "-c", APPTEST], cwd=work,
                               env=dict(env, VAE_KERAS_MODELS_DIR=str(work / "models"))).stdout.strip().splitlines()[-1])
        assert shown["package"].startswith(site) and shown["app"].startswith(site), shown
        assert shown["title"] == ["wheel/1"] and not shown["errors"] and not shown["exceptions"], shown
        assert shown["images"] >= 2 and "**wheel/1** · mnist-10k · z=2" in " ".join(shown["sidebar"]), shown
        # `vae-keras dashboard` serves it: Streamlit's health endpoint answers within 90 s.
        deadline, healthy = time.monotonic() + 90, False
        while time.monotonic() < deadline and not healthy:
            assert server.poll() is None, (tmp_path / "dashboard.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                time.sleep(0.3)
        assert healthy, (tmp_path / "dashboard.log").read_text()[-3000:]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the command and its streamlit child (their own session)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()
    print(f"wheel test: build + venv + install {built - start:.1f} s, train {trained - built:.1f} s, "
          f"dashboard {time.monotonic() - trained:.1f} s, total {time.monotonic() - start:.1f} s")

"""The README's examples, run: every fenced ```bash and ```python block, in README order, in one
scratch folder (so a block can use what an earlier one wrote, like a reader following along).

Small settings, so the whole file runs in about two minutes: ``--epochs N`` -> 1, ``--time-limit S``
-> 1, ``--iw-samples K`` -> 2, ``--num N`` -> 4; every ``train`` gets ``--eval-iw-samples 0`` (no final
test evaluation) and ``--epochs 1`` when it has neither ``--epochs`` nor ``--time-limit``; every
``evaluate`` gets ``--num-images 200``; in Python, ``epochs=N`` -> 1, ``iw_samples=K`` -> 2 and
``TrainConfig(...)`` gets ``epochs=1, eval_iw_samples=0``. ``vae-keras`` commands run in this
process through ``vae_keras.cli.main`` (a ``--distribute multi-worker`` one in a subprocess, as a
one-worker cluster, since its strategy must come first in a process); Python blocks run with
``exec``. Files the README treats as the reader's own (``run.yaml``) are written first.

A block that cannot run here (docker, curl against a server, Slurm, a cluster, ``make`` setting up a
venv) carries ``<!-- readme-test: skip (why) -->`` on the line before its fence, so every skip is
visible in the README and in the test report. A block without that marker that runs anything
else than ``vae-keras`` commands fails, naming the command. The blocks depend on each other in
README order: run the whole file, not a single block.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

README = os.path.join(REPO_ROOT, "README.md")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_FENCE = re.compile(r"^```(\w*)\s*$")
_SKIP = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((.+)\)\s*-->\s*$")
_CLI_SMALL = {"--epochs": "1", "--time-limit": "1", "--iw-samples": "2", "--num": "4", "--eval-iw-samples": "0"}
_CLI_ADD = {"train": ["--eval-iw-samples", "0"], "evaluate": ["--num-images", "200"]}
_RUN_YAML = "dataset: mnist-10k\nepochs: 1\nlatent_dim: 8\n"  # the README's `--config run.yaml`


def readme_blocks(path=README):
    """``[(line, lang, code, skip_reason)]`` of every fenced bash/python block, in order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = _SKIP.match(prev.strip())
        if lang in ("bash", "python"):
            blocks.append((start + 1, lang, "\n".join(lines[start + 1 : end]), skip.group(1) if skip else None))
        i = end + 1
    return blocks


def small_cli(args):
    """A ``vae-keras`` argument list with the small settings of the module docstring."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a in _CLI_SMALL:
            out[i + 1] = _CLI_SMALL[a]
    command = out[0] if out else None
    if command == "train" and not {"--epochs", "--time-limit"} & set(out):
        out += ["--epochs", "1"]
    for flag, value in zip(_CLI_ADD.get(command, [])[::2], _CLI_ADD.get(command, [])[1::2]):
        if flag not in out:
            out += [flag, value]
    return out


def small_python(code):
    code = re.sub(r"\bepochs=\d+", "epochs=1", code)
    code = re.sub(r"\biw_samples=\d+", "iw_samples=2", code)
    return re.sub(r"\bTrainConfig\(", "TrainConfig(epochs=1, eval_iw_samples=0, ", code)


def bash_commands(code):
    """Logical lines (``\\`` continuations joined) as token lists, comments dropped."""
    commands, pending = [], ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        tokens = shlex.split(pending + line, comments=True)
        pending = ""
        if tokens:
            commands.append(tokens)
    return commands


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_vae_keras(args, where):
    from vae_keras.cli import main

    if any(a == "/usr/share/datasets/fashion-mnist" for a in args) and not os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip(f"{where}: needs Debian's dataset-fashion-mnist in {FASHION_MNIST_DIR}")
    if "multi-worker" in args:
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{_free_port()}"]}, "task": {"type": "worker", "index": 0}}
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run([sys.executable, "-m", "vae_keras", *args], capture_output=True, text=True, env=env,
                              timeout=600)
        assert proc.returncode == 0, f"{where}: vae-keras {shlex.join(args)} -> exit {proc.returncode}\n{proc.stderr[-3000:]}"
        return
    code = main(args)
    assert code == 0, f"{where}: vae-keras {shlex.join(args)} -> exit {code} (stderr above)"


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    (root / "run.yaml").write_text(_RUN_YAML)
    return root


@pytest.mark.parametrize("line, lang, code, skip", BLOCKS, ids=[f"L{b[0]}-{b[1]}" for b in BLOCKS])
def test_readme_block_runs(line, lang, code, skip, workspace, monkeypatch):
    where = f"README.md line {line}"
    if skip:
        pytest.skip(f"{where}: {skip}")
    monkeypatch.chdir(workspace)
    if lang == "python":
        exec(compile(small_python(code), where, "exec"), {"__name__": "__readme__"})
        return
    commands = bash_commands(code)
    for tokens in commands:
        if tokens[0] != "vae-keras":
            pytest.fail(f"{where} runs {tokens[0]!r}, which this test cannot run: make it a vae-keras command, "
                        "or put <!-- readme-test: skip (why) --> on the line before the block")
    for tokens in commands:
        _run_vae_keras(small_cli(tokens[1:]), where)


def test_quick_start_export_is_complete(workspace):
    """After the blocks: the Python quick start's export has its dataset, metrics and one history row
    per epoch (1 with the small settings); its `evaluate` without --dataset ran in the block after it."""
    import csv

    from vae_keras import exported

    version = workspace / "saved_models" / "my-vae" / "1"
    card = exported.read_card(str(version))
    assert card["dataset"] == "mnist-10k"
    assert isinstance(card["metrics"].get("test_nll"), float)
    with open(version / "assets.extra" / "history.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]


def test_readme_markers_and_substitutions(tmp_path):
    """The harness itself: markers are found, and the small settings replace the README's."""
    text = ("intro\n\n<!-- readme-test: skip (needs docker) -->\n```bash\ndocker run x\n```\n\n```\nnot code\n```\n"
            "```python\nvae.fit(x, epochs=5)\n```\n")
    (tmp_path / "R.md").write_text(text)
    blocks = readme_blocks(str(tmp_path / "R.md"))
    assert [(b[1], b[3]) for b in blocks] == [("bash", "needs docker"), ("python", None)]
    assert small_python(blocks[1][2]) == "vae.fit(x, epochs=1)"
    assert small_cli(["train", "--epochs", "100", "--time-limit", "240"]) == [
        "train", "--epochs", "1", "--time-limit", "1", "--eval-iw-samples", "0"]
    assert small_cli(["train", "--distribute", "mirrored"]) == [
        "train", "--distribute", "mirrored", "--epochs", "1", "--eval-iw-samples", "0"]
    assert bash_commands("vae-keras train --dataset d \\\n    --out o   # comment\n\n") == [
        ["vae-keras", "train", "--dataset", "d", "--out", "o"]]

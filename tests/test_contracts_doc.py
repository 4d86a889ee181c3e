"""docs/contracts.md is the repository's own contract text: it names what the code really exports, and the
code and docs point at it rather than at files outside the repository."""

import os
import re

from conftest import REPO_ROOT

DOC = os.path.join(REPO_ROOT, "docs", "contracts.md")


def _doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def test_no_file_points_at_a_design_document_outside_the_repository():
    offenders = []
    for folder in ("vae_keras", "dashboard", "tests", "benchmarks", "docs", "scripts"):
        for root, _, files in os.walk(os.path.join(REPO_ROOT, folder)):
            for name in files:
                if not name.endswith((".py", ".md", ".sh", ".txt")) or name == os.path.basename(__file__):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                if re.search(r"\bDESIGN\.md\b|\.\./shared/", text):
                    offenders.append(os.path.relpath(path, REPO_ROOT))
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert not offenders, offenders
    assert "(docs/contracts.md)" in readme


def test_the_signature_table_names_every_input_and_output_the_code_requires():
    from vae_keras import export, exported

    doc = _doc()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", doc, flags=re.M)}
    assert set(export.SIGNATURES) <= set(rows), sorted(rows)
    for name, (inputs, outputs) in exported.REQUIRED_SIGNATURES.items():
        for tensor in inputs | outputs:
            assert f"`{tensor}`" in rows[name], (name, tensor)


def test_every_model_card_field_is_documented(tiny_trained_vae):
    from vae_keras import export, training

    card = export.build_model_card(tiny_trained_vae, dataset="mnist-10k", metrics={})
    doc = _doc()
    missing = [key for key in card if f"`{key}`" not in doc]
    assert not missing, missing
    # train() adds these to the card and its metrics (see training.train).
    for key in ("network", "hidden", "dataset_num_classes", "test_binarized", "epochs_trained", "stopped_by_time_limit",
                "validation_data", "test_nll_kind", "test_bits_per_dim", "test_iw_samples"):
        assert f"`{key}`" in doc, key
    assert f"`{training.TEST_BINARIZE_SEED}`" in doc or f"seed {training.TEST_BINARIZE_SEED}" in doc

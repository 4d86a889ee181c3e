"""Installs the vae_keras package and its `vae-keras` console script."""

import re
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "vae_keras" / "__init__.py").read_text()).group(1)

setup(
    name="vae_keras",
    version=VERSION,
    description="Variational autoencoders for Keras 3 / TensorFlow: model.fit training, TF Serving exports, a Streamlit dashboard.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # Every package under vae_keras/, found, not listed: the dashboard subpackage, the data files
    # (vae_keras/data_files holds no Python, so it is found as a namespace package) and any new ones.
    packages=find_namespace_packages(include=["vae_keras", "vae_keras.*"], exclude=["*.__pycache__"]),
    package_data={"vae_keras.data_files": ["*.npz", "*.md", "*.weights.h5", "*.json"]},  # classifier-*: sample quality
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorboard>=2.21",
        "tensorflow-datasets>=4.9",
        "importlib_resources>=6",  # tfds downloads need it but do not declare it
        "tensorflow-serving-api>=2.21,<2.22",
        "numpy>=1.26",
        "pandas>=2.2",
        "pillow>=10",
        "pyyaml>=6",
        "scikit-learn>=1.5",
        "scipy>=1.11",
    ],
    extras_require={
        # vae-keras dashboard / vae_keras.dashboard; Streamlit as tested (the app uses bind="query-params" and lazy tabs)
        "dashboard": ["streamlit>=1.67", "altair>=5", "pandas>=2.2"],
        "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "hypothesis>=6.100", "playwright>=1.50"],
    },
    entry_points={"console_scripts": ["vae-keras=vae_keras.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: TensorFlow",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

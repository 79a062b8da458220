"""Shared fixtures. Tests never touch global random state: every draw comes from an explicit seed."""

import matplotlib

matplotlib.use("Agg")

"""A dependency-free progress bar on stderr for long runs (``progress=True``)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``label  k/total  rate  eta`` at most every ``every`` seconds; silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool, every: float = 0.5):
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.every = every
        self.start = self.last = time.perf_counter()

    def update(self, k: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < self.every and k < self.total:
            return
        self.last = now
        rate = k / max(now - self.start, 1e-9)
        eta = (self.total - k) / rate if rate > 0 else float("inf")
        width = 30
        done = int(width * k / self.total)
        sys.stderr.write(f"\r{self.label} [{'#' * done}{'.' * (width - done)}] {k}/{self.total} "
                         f"{rate:,.0f} steps/s eta {eta:,.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self.update(self.total)
            sys.stderr.write("\n")
            sys.stderr.flush()

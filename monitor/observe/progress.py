"""Progress bars on stderr for long work: the core reports through callbacks (``on_epoch`` of training,
``progress`` of a backtest), and the commands show them with these."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm


class Bar:
    """One tqdm bar, created at the first report (when the total is known) and closed on exit."""

    def __init__(self, desc: str, unit: str, *, enabled: bool = True) -> None:
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self._bar: tqdm | None = None

    def _ensure(self, total: int) -> tqdm:
        if self._bar is None:
            self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, disable=not self.enabled)
        return self._bar

    def epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        """An ``on_epoch`` callback of training."""
        bar = self._ensure(epochs)
        bar.update(epoch - bar.n)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")

    def count(self, done: int, total: int) -> None:
        """A ``progress`` callback: ``done`` of ``total`` so far."""
        bar = self._ensure(total)
        bar.update(done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

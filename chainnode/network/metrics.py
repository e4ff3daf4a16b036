"""Counters for metrics: a dict of name -> int that only grows (Prometheus-style)."""

from __future__ import annotations


class Counters(dict):
    def inc(self, name: str, n: int = 1) -> None:
        self[name] = self.get(name, 0) + n

    def snapshot(self) -> dict[str, int]:
        return dict(self)

"""The strategy registry: built-in strategies by name, imported only when asked for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from runner.errors import StrategyLoadError
from strategies.base import StrategyInterface


@dataclass(frozen=True)
class StrategySpec:
    """Where a registered strategy lives: `module:Class`."""

    name: str
    target: str

    def load(self) -> type[StrategyInterface]:
        module_name, _, class_name = self.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise StrategyLoadError(f"strategy {self.name!r} ({self.target}) cannot be loaded: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, StrategyInterface)):
            raise StrategyLoadError(f"{self.target} is not a StrategyInterface subclass")
        return cls


BUILT_IN = {
    spec.name: spec
    for spec in (
        StrategySpec("ma_crossover", "strategies.ma_crossover:MACrossover"),
        StrategySpec("buy_and_hold", "strategies.buy_and_hold:BuyAndHold"),
    )
}


def known_strategies() -> list[str]:
    return sorted(BUILT_IN)


def strategy_class(name: str) -> type[StrategyInterface]:
    """Return the class registered as `name`.

    Raises:
        StrategyLoadError: no strategy has that name (the message lists the known ones).
    """
    spec = BUILT_IN.get(name)
    if spec is None:
        raise StrategyLoadError(
            f"unknown strategy {name!r}; known strategies: {', '.join(known_strategies())}"
        )
    return spec.load()

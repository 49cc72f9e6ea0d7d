"""Parameter grids for sweeps: value specs (`5,10,20`, `30:90:10`, YAML lists) expanded into
the combinations a sweep replays, checked against the parameters a strategy declares.

A range `start:stop:step` includes `stop` when the steps land on it (30:90:10 is 30, 40, ...,
90). Its numbers are read as decimals, so 0.1:0.3:0.1 is exactly 0.1, 0.2, 0.3; a range of
whole numbers gives ints, any other gives floats with their shortest decimal spelling.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from runner.errors import ConfigError

Combination = dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """The values of each swept parameter, in the order given; its combinations vary the last
    parameter fastest."""

    values: dict[str, tuple[Any, ...]]

    @property
    def size(self) -> int:
        size = 1
        for values in self.values.values():
            size *= len(values)
        return size

    def combinations(self) -> Iterator[Combination]:
        names = list(self.values)
        for chosen in itertools.product(*self.values.values()):
            yield dict(zip(names, chosen))


def parse_assignment(text: str) -> tuple[str, str]:
    """Split a command-line `--param name=spec` into its name and spec.

    Raises:
        ConfigError: there is no `=`, or the name or the spec is empty.
    """
    name, equals, spec = text.partition("=")
    if not equals or not name.strip() or not spec.strip():
        raise ConfigError(
            f"--param {text!r}: expected NAME=VALUES, such as fast=5,10,20 or slow=30:90:10"
        )
    return name.strip(), spec.strip()


def parse_values(name: str, spec: str | Sequence[Any] | int | float) -> tuple[Any, ...]:
    """The values one parameter takes: a YAML list, a single value, `a,b,c` or `start:stop:step`.

    Raises:
        ConfigError: a range is not numeric, has a step <= 0, or holds no value; a list is empty.
    """
    if isinstance(spec, (list, tuple)):
        values = tuple(spec)
    elif not isinstance(spec, str):
        values = (spec,)
    elif ":" in spec:
        values = _range(name, spec)
    else:
        values = tuple(_scalar(item.strip()) for item in spec.split(",") if item.strip())
    if not values:
        raise ConfigError(f"parameter {name!r}: no values in {spec!r}; expected e.g. 5,10,20 or 30:90:10")
    return tuple(dict.fromkeys(values))  # a value given twice is run once


def _range(name: str, spec: str) -> tuple[Any, ...]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise ConfigError(f"parameter {name!r}: range {spec!r} must be start:stop:step, such as 30:90:10")
    try:
        start, stop, step = (Decimal(part.strip()) for part in parts)
    except InvalidOperation:
        raise ConfigError(
            f"parameter {name!r}: range {spec!r} is not numeric; expected numbers start:stop:step, such as 30:90:10"
        ) from None
    if not all(number.is_finite() for number in (start, stop, step)):
        raise ConfigError(f"parameter {name!r}: range {spec!r} must have finite numbers")
    if step <= 0:
        raise ConfigError(f"parameter {name!r}: range {spec!r} has step {step}; the step must be > 0")
    if start > stop:
        raise ConfigError(
            f"parameter {name!r}: range {spec!r} is empty (start {start} is above stop {stop})"
        )
    whole = all(number == number.to_integral_value() for number in (start, stop, step))
    values, current = [], start
    while current <= stop:
        values.append(int(current) if whole else float(current))
        current += step
    return tuple(values)


def _scalar(text: str) -> Any:
    """A list item as YAML reads it: 5 is an int, 0.5 a float, true a bool, anything else text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def build_grid(specs: Mapping[str, Any]) -> Grid:
    """The grid of `specs` (name -> spec, see `parse_values`).

    Raises:
        ConfigError: no parameter is given, or a spec is invalid.
    """
    if not specs:
        raise ConfigError("no parameter to sweep: give --param NAME=VALUES (or a sweep.params section)")
    return Grid({name: parse_values(name, spec) for name, spec in specs.items()})


def check_declared(grid: Grid, params_model: type[BaseModel], strategy: str) -> None:
    """Every swept parameter is one the strategy declares.

    Raises:
        ConfigError: naming the unknown parameters and listing the declared ones.
    """
    declared = list(params_model.model_fields)
    unknown = [name for name in grid.values if name not in declared]
    if unknown:
        raise ConfigError(
            f"strategy {strategy!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it declares: {', '.join(declared) or 'none'}"
        )


def rejection(params_model: type[BaseModel], base: Mapping[str, Any], combination: Combination) -> str | None:
    """Why the strategy's parameter model refuses `combination` over its `base` params (such as
    fast >= slow for a crossover), or None when it accepts it."""
    try:
        params_model.model_validate({**base, **combination})
    except ValidationError as exc:
        return "; ".join(
            ".".join(map(str, error["loc"])) + ": " + str(error.get("ctx", {}).get("error", error["msg"]))
            if error["loc"] else str(error.get("ctx", {}).get("error", error["msg"]))
            for error in exc.errors()
        )
    return None

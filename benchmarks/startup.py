"""Start-up benchmark: the wall time of `runner --help` and `runner validate configs/default.yaml`
(median and min over several runs), and which heavy modules `runner --help` imports.

`runner --help` is answered from a cache once rendered (cli/launch.py): the script gives it a
cache directory of its own, times one first run that renders the help and fills the cache, then
the repeated runs (served from the cache), which are the figure the target is about.

    python benchmarks/startup.py                  # 10 runs of each command
    python benchmarks/startup.py --repeat 1 --json

Each run is a fresh process of the installed `runner` console script. The imports are read in
one more process that runs the same entry point, then lists which of pandas, numpy, SQLAlchemy,
SQLModel, pydantic, yaml, rich and typer are in `sys.modules`; `python -X importtime` gives the
import time of `runner --help` per package. `python -c pass` is timed too, as the floor.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile

from _common import RUNNER, ROOT, emit, machine, parser, positive, run_child, target, target_rows

COMMANDS = (["--help"], ["validate", "configs/default.yaml"])
HEAVY = ("pandas", "numpy", "sqlalchemy", "sqlmodel", "pydantic", "yaml", "rich", "typer")
TARGET_HELP_SECONDS = 0.3
# Runs the console script's entry point as `runner ARGS...` would, then prints on stderr which
# of the heavy modules were imported (after a marker line, so the help text cannot be mistaken).
PROBE = """
import json, sys
from cli.launch import main
heavy, sys.argv = sys.argv[1].split(","), ["runner", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
print("--imported--", json.dumps({name: name in sys.modules for name in heavy}), file=sys.stderr)
"""


def time_command(argv: list[str], label: str, repeat: int) -> dict:
    children = [run_child(argv, label, cwd=ROOT) for _ in range(repeat)]
    walls = [child.wall_seconds for child in children]
    return {
        "command": label, "runs": repeat, "median_seconds": round(statistics.median(walls), 3),
        "min_seconds": round(min(walls), 3),
        "median_cpu_seconds": round(statistics.median(child.cpu_seconds for child in children), 3),
    }


def imported(args: list[str]) -> dict[str, bool]:
    child = run_child([sys.executable, "-c", PROBE, ",".join(HEAVY), *args], "the import probe", cwd=ROOT)
    marker = [line for line in child.stderr.splitlines() if line.startswith("--imported--")]
    return json.loads(marker[-1].removeprefix("--imported--"))


def import_time_by_package(args: list[str], count: int = 10) -> list[dict]:
    """Import time of `runner ARGS` summed per top-level package (the self times that
    `python -X importtime` reports for each of its modules), largest first."""
    child = run_child(
        [sys.executable, "-X", "importtime", "-c", "from cli.launch import main; main()", *args],
        "python -X importtime", cwd=ROOT,
    )
    totals: dict[str, int] = {}
    for line in child.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if own.isdigit():
            package = name.split(".")[0]
            totals[package] = totals.get(package, 0) + int(own)
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return [{"package": package, "import_ms": round(micro / 1000, 1)} for package, micro in ranked]


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--repeat", type=positive, default=10, help="runs of each command (default 10)")
    args = options.parse_args()
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="runner-startup-")  # a cold help cache
    first = time_command([str(RUNNER), "--help"], "runner --help, first run (renders, fills the cache)", 1)
    timings = [time_command([str(RUNNER), *command], " ".join(["runner", *command]), args.repeat) for command in COMMANDS]
    timings.append(first)
    timings.append(time_command([sys.executable, "-c", "pass"], "python -c pass (the interpreter alone)", args.repeat))
    help_imports = imported(["--help"])
    slowest = import_time_by_package(["--help"])
    targets = [target("runner --help median_seconds", timings[0]["median_seconds"], "<", TARGET_HELP_SECONDS, " s")]
    result = {
        "commands": timings, "help_imports": help_imports, "help_import_ms_by_package": slowest, "targets": targets,
        "machine": machine(),
    }
    emit(
        f"startup: fresh processes of the `runner` console script, {args.repeat} run(s) each",
        result,
        [
            ("wall time", timings),
            ("imported by `runner --help`", [{"module": name, "imported": "yes" if loaded else "no"} for name, loaded in help_imports.items()]),
            ("import time of `runner --help` by package (python -X importtime, self times summed)", slowest),
            ("targets", target_rows(targets)),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()

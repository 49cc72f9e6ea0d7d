"""`runner sweep --executor ray` on a local Ray started once for this module (it takes seconds):
the same runs as the local pool, and a replay whose worker dies retried once, then recorded as
failed, on either executor, without losing the others."""

from __future__ import annotations

import json

import pytest
import ray

from tests.sweep_helpers import KILLER, assert_same_results, write_config
from tests.test_sweep import invoke

GRID = ["--param", "fast=3,7,5", "--param", "slow=12"]  # the strategy kills its process for fast = 7


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The same sweep on the local pool, then on Ray: (folder, [(summary, attempts so far)])."""
    folder = tmp_path_factory.mktemp("ray")
    (folder / "killer.py").write_text(KILLER)
    config = str(write_config(folder, strategy="file: killer.py"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcomes = []
        for executor in ("local", "ray"):
            result = invoke("sweep", config, *GRID, "--executor", executor, "--workers", "2", "--json")
            assert result.exit_code == 1, result.output  # one run failed
            outcomes.append((json.loads(result.stdout), (folder / "attempts.txt").read_text().count("attempt")))
    finally:
        ray.shutdown()
    return folder, outcomes


def test_ray_gives_the_same_runs_as_the_local_pool(swept):
    folder, [(local, _), (distributed, _)] = swept
    assert (local["executor"], distributed["executor"]) == ("local", "ray")
    assert distributed["counts"] == {"completed": 2, "failed": 1}
    assert_same_results(folder / "runs.db", local["sweep_id"], distributed["sweep_id"])


def test_a_replay_whose_worker_dies_is_retried_once_then_recorded_failed(swept):
    _, [(local, local_attempts), (distributed, all_attempts)] = swept
    for outcome in (local, distributed):
        assert {r["params"]["fast"]: r["status"] for r in outcome["runs"]} == {3: "completed", 7: "failed", 5: "completed"}
        assert outcome["runs"][1]["run_id"] == ""
    assert local["runs"][1]["error"] == "its worker process died (retried once)"
    assert "WorkerCrashedError" in distributed["runs"][1]["error"], distributed["runs"][1]["error"]
    assert (local_attempts, all_attempts - local_attempts) == (2, 2)

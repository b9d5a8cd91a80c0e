"""`census --estimate N` past the exact frontier, the `--max-seconds` and `--max-candidates`
refusals that offer it, and counts that stay exact integers past 2^64."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from circuit_census.circuits.census import CensusResult, census
from circuit_census.circuits.estimate import CensusEstimate
from circuit_census.circuits.sampling import sample_circuits
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace
from circuit_census.cli.census_cmd import _result_dict, estimate_summary, format_count_estimate
from circuit_census.cli.progress import _CountColumn, make_progress
from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model

CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)


def random_network(sizes, seed: int) -> Network:
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 1, (sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)]
    bs = [rng.normal(0, 0.3, sizes[i + 1]) for i in range(len(sizes) - 1)]
    return Network(tuple(ws), tuple(bs), "relu", "identity")


@pytest.fixture()
def model_files(tmp_path: Path):
    """``make(sizes, seed)``: a random network and the XOR corners, saved; their paths."""

    def make(sizes, seed: int = 0) -> tuple[Path, Path, Network]:
        net = random_network(sizes, seed)
        name = "-".join(map(str, sizes))
        model, data = tmp_path / f"{name}.safetensors", tmp_path / "corners.npz"
        save_model(model, net, {})
        y = np.array([[0.0], [1.0], [1.0], [0.0]]).repeat(sizes[-1], axis=1)
        save_data(data, CORNERS, y)
        return model, data, net

    return make


def one_line_error(result: tuple[int, str, str], *fragments: str) -> str:
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ the estimate


def test_estimate_agrees_with_the_exact_census_draw_by_draw(cli, model_files, tmp_path):
    model, data, net = model_files((2, 3, 1), seed=0)
    settings = CensusSettings(threshold=0.05)
    exact = census(net, CORNERS, None, settings, RunOptions())
    truth = Fraction(exact.n_valid, exact.n_candidates)
    assert 0.1 < truth < 0.9  # a fraction an interval can miss on either side
    out = tmp_path / "estimate.json"
    code, stdout, err = cli(
        ["census", "--model", str(model), "--data", str(data), "--threshold", "0.05",
         "--estimate", "400", "--estimate-seed", "7", "--output", str(out)]
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out.read_text())
    # the same 400 circuits, judged by the census engine: the estimate counts exactly these
    held = {tuple(row) for row in exact.valid.tolist()}
    drawn = sample_circuits(CircuitSpace((2, 3, 1)), 400, seed=7)
    k = sum(tuple(row) in held for row in drawn.tolist())
    assert doc["estimate"] is True and doc["seed"] == 7
    assert (doc["n_candidates"], doc["n_sampled"], doc["n_valid_sampled"]) == (63, 400, k)
    assert doc["valid_fraction"] == k / 400
    low, high = doc["valid_fraction_ci"]
    assert low <= truth <= high  # this seed's interval covers the census's answer
    assert doc["n_valid_estimate"] == round(Fraction(k, 400) * 63)
    assert doc["n_valid_ci"][0] <= exact.n_valid <= doc["n_valid_ci"][1]
    assert "valid_circuits" not in doc and "minimal_circuits" not in doc
    assert doc["settings"]["threshold"] == 0.05
    line = next(s for s in stdout.splitlines() if "estimated" in s)
    assert "estimated valid circuits: about" in line and "95% CI" in line
    assert f"valid fraction {k / 400:.3g} [{low:.3g}, {high:.3g}]" in line
    assert "from 400 uniform draws" in line and "an estimate, not a census" in line


def test_estimate_per_output_and_joint(cli, model_files, tmp_path):
    model, data, net = model_files((2, 3, 2), seed=1)
    out, figures = tmp_path / "outputs.json", tmp_path / "figures"
    code, stdout, err = cli(
        ["census", "--model", str(model), "--data", str(data), "--estimate", "200",
         "--joint", "--figures", str(figures), "--output", str(out), "--workers", "2"]
    )  # fmt: skip
    assert code == 0, err
    assert "figures: not applicable to an estimate" in stdout and not figures.exists()
    assert "workers: an estimate judges its draws in this process" in stdout
    doc = json.loads(out.read_text())
    assert doc["estimate"] is True
    assert [e["output"] for e in doc["outputs"]] == [0, 1]
    assert [e["n_candidates"] for e in doc["outputs"]] == [CircuitSpace((2, 3, 1)).count()] * 2
    assert doc["joint"]["n_candidates"] == CircuitSpace((2, 3, 2)).count()
    assert all(e["estimate"] is True and e["n_sampled"] == 200 for e in doc["outputs"])
    for label in ("output 0: estimated", "output 1: estimated", "joint: estimated"):
        assert label in stdout


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--estimate", "0"], ["--estimate must be at least 1", "got 0"]),
        (["--estimate", "-3"], ["--estimate must be at least 1", "got -3"]),
        (["--estimate", "5", "--estimate-seed", "-1"], ["--estimate-seed", "non-negative"]),
        (["--estimate", "5", "--circuits-file", "c.circuits"], ["--circuits-file", "--estimate"]),
        (["--max-seconds", "0"], ["--max-seconds must be positive"]),
        (["--estimate", "many"], ["--estimate", "integer"]),
    ],
)
def test_bad_estimate_flags_are_one_line_errors(cli, model_files, tmp_path, extra, fragments):
    model, data, _ = model_files((2, 2, 1))
    out = tmp_path / "never.json"
    argv = ["census", "--model", str(model), "--data", str(data), "--output", str(out), *extra]
    one_line_error(cli(argv), *fragments)
    assert not out.exists() and not (tmp_path / "c.circuits").exists()


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("workers", ["1", "2"])
def test_max_seconds_stops_a_running_census_and_offers_an_estimate(
    cli, model_files, tmp_path, workers
):
    model, data, _ = model_files((2, 12, 1))
    out, circuits = tmp_path / "never.json", tmp_path / "never.circuits"
    argv = ["census", "--model", str(model), "--data", str(data), "--output", str(out),
            "--circuits-file", str(circuits), "--workers", workers]  # fmt: skip
    line = one_line_error(
        cli([*argv, "--max-seconds", "1e-9"]),
        "stopped at --max-seconds 1e-09 with",
        "% of 16,777,215 candidates decided; nothing was written",
        "add --estimate 10000 to estimate it from 10,000 uniform draws instead",
    )
    assert "100%" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model.name, data.name])
    code, stdout, err = cli([*argv, "--max-seconds", "600", "-q"])
    assert code == 0 and "valid of 16,777,215 candidates" in stdout, err
    assert out.exists() and circuits.exists()


def test_every_refusal_comes_before_any_census_starts(cli, model_files):
    model, data, _ = model_files((2, 3, 2))
    code, stdout, err = cli(
        ["census", "--model", str(model), "--data", str(data), "--joint",
         "--max-candidates", str(CircuitSpace((2, 3, 1)).count())]
    )  # fmt: skip
    one_line_error((code, stdout, err), "joint: ", "exceed --max-candidates 63", "--estimate")
    assert "valid of" not in stdout  # the per-output censuses were not taken first


def test_past_the_frontier_a_census_is_refused_and_an_estimate_runs(cli, model_files, tmp_path):
    model, data, _ = model_files((2, 32, 1))
    one_line_error(
        cli(["census", "--model", str(model), "--data", str(data)]),
        "18,446,744,073,709,551,615 candidate circuits exceed --max-candidates",
        "a census of 2-32-1 would take about 11,700 years",
        "add --estimate 10000",
    )
    out = tmp_path / "big.json"
    code, stdout, err = cli(
        ["census", "--model", str(model), "--data", str(data), "--estimate", "40",
         "--output", str(out), "-q"]
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["n_candidates"] == 2**64 - 1  # exact past 2^64, not a float
    low, high = doc["n_valid_ci"]
    assert isinstance(low, int) and isinstance(high, int) and low <= doc["n_valid_estimate"]
    assert high == -(-Fraction(doc["valid_fraction_ci"][1]) * (2**64 - 1) // 1)


def test_count_of_2_32_1_is_exact_and_offers_an_estimate(cli):
    code, stdout, _ = cli(["count", "--hidden", "32"])
    assert code == 0
    assert "2-32-1: 18,446,744,073,709,551,615 candidate circuits" in stdout
    assert "--estimate 10000" in stdout
    code, stdout, _ = cli(["count", "--hidden", "4"])
    assert "--estimate" not in stdout  # a census this size is taken, not refused


# ------------------------------------------------------------------ exact counts


def test_census_json_counts_are_exact_past_2_64():
    space = CircuitSpace((2, 32, 1))
    big = 2**64 + 12_345
    result = CensusResult(
        space, random_network((2, 32, 1), 0), space.count(), big, None,
        {"criterion": "mse", "threshold": 0.05, "ablation": "zero"}, n_bounded=big - 1,
    )  # fmt: skip
    entry = json.loads(json.dumps(_result_dict(result, (2, 32, 1), 10, None, None, None, "n")))
    assert entry["n_candidates"] == 2**64 - 1
    assert entry["n_valid"] == big and entry["n_decided_by_bounds"] == big - 1
    assert entry["n_left_out"] == big


def test_estimated_counts_are_exact_integers_at_any_size():
    n_candidates = 10**400 + 7  # past any float
    found = CensusEstimate(n_candidates, 1000, 3, 0, 0.003, 0.001, 0.009)
    assert found.n_valid == (3 * n_candidates + 500) // 1000
    low, high = found.n_valid_interval
    assert low == Fraction(0.001) * n_candidates // 1
    assert high == -(-Fraction(0.009) * n_candidates // 1)
    assert json.loads(json.dumps(found.to_dict()))["n_candidates"] == n_candidates
    line = estimate_summary(found, 1.0)
    assert "about 3e397 (95% CI 1e397 to 9e397)" in line and "from 1,000 uniform draws" in line


@pytest.mark.parametrize(
    "value, text",
    [(0, "0"), (999_999, "999,999"), (1_234_567, "1.23e6"), (9_995_000, "1e7"),
     (2**64 - 1, "1.84e19"), (10**400, "1e400")],
)  # fmt: skip
def test_estimated_counts_read_as_three_significant_figures(value, text):
    assert format_count_estimate(value) == text


def test_progress_bar_counts_exactly_past_2_63():
    progress = make_progress()
    task = progress.add_task("census", total=2**64 - 1)
    progress.update(task, completed=2**63 + 1)
    shown = str(_CountColumn().render(progress.tasks[0]))
    assert shown == "9,223,372,036,854,775,809/18,446,744,073,709,551,615"


def test_an_estimate_reports_progress_as_it_draws_and_judges():
    from circuit_census.circuits.estimate import estimate_census

    net = random_network((2, 3, 1), 2)
    calls: list[tuple[int, int]] = []
    found = estimate_census(
        net, CORNERS, None, CensusSettings(), 600, 4, lambda d, n: calls.append((d, n))
    )
    assert calls == [(256, 600), (512, 600), (600, 600)]  # drawing and judging, block by block
    assert found.n_sampled == 600

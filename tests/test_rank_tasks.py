"""Effective rank (Roy & Vetterli) by hand, task complexity per SPEC, ``circuit-census tasks``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from circuit_census.tasks.boolean import builtin_tasks, make_task, task_complexity
from circuit_census.tasks.complexity import effective_rank

GOLDEN = (1 + math.sqrt(5)) / 2


def erank_of_singular_values(s: list[float]) -> float:
    p = np.array(s) / sum(s)
    return float(np.exp(-np.sum(p * np.log(p))))


# ----------------------------------------------------------------- effective rank


def test_effective_rank_hand_values() -> None:
    assert effective_rank(np.array([[0, 1], [1, 0]])) == pytest.approx(2.0)  # XOR table
    assert effective_rank(np.array([[0, 0], [0, 1]])) == pytest.approx(1.0)  # AND table
    # OR table [[0,1],[1,1]]: singular values golden ratio and its inverse
    or_value = erank_of_singular_values([GOLDEN, 1 / GOLDEN])
    assert effective_rank(np.array([[0, 1], [1, 1]])) == pytest.approx(or_value)
    assert or_value == pytest.approx(1.8, abs=0.01)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_identity_has_effective_rank_n(n: int) -> None:
    assert effective_rank(np.eye(n)) == pytest.approx(n)
    assert effective_rank(3.5 * np.eye(n)) == pytest.approx(n)  # scale-free


def test_rank_one_matrices_have_effective_rank_one() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        u, v = rng.normal(size=7), rng.normal(size=4)
        assert effective_rank(np.outer(u, v)) == pytest.approx(1.0, abs=1e-9)


def test_effective_rank_of_known_spectrum() -> None:
    rng = np.random.default_rng(1)
    q1, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    q2, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    s = [4.0, 2.0, 1.0, 0.5]
    m = q1[:, :4] @ np.diag(s) @ q2.T
    assert effective_rank(m) == pytest.approx(erank_of_singular_values(s))
    assert effective_rank(m.T) == pytest.approx(effective_rank(m))
    assert 1.0 < effective_rank(m) < 4.0


def test_effective_rank_edge_cases() -> None:
    assert effective_rank(np.zeros((3, 2))) == 0.0
    assert effective_rank(np.zeros((0, 2))) == 0.0
    assert effective_rank(np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)  # a vector
    with pytest.raises(ValueError):
        effective_rank(np.zeros((2, 2, 2)))


# ----------------------------------------------------------------- task complexity


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("xor", 2.0),
        ("xnor", 2.0),
        ("and", 1.0),
        ("nor", 1.0),
        ("or", erank_of_singular_values([GOLDEN, 1 / GOLDEN])),
        ("nand", erank_of_singular_values([GOLDEN, 1 / GOLDEN])),
        ("0110", 2.0),
        ("a", 1.0),
    ],
)
def test_gate_complexity(spec: str, expected: float) -> None:
    assert make_task(spec).complexity == pytest.approx(expected)


def test_single_output_complexity_uses_the_square_layout() -> None:
    # parity3 laid out 2 x 4 (first input indexes rows): [[0,1,1,0],[1,0,0,1]], rank 2
    task = make_task("parity3")
    assert task.table[:, 0].tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    layout = np.array([[0, 1, 1, 0], [1, 0, 0, 1]])
    assert task.complexity == pytest.approx(effective_rank(layout))
    assert task.complexity == pytest.approx(2.0)
    # not the effective rank of the 8 x 1 column (which is always 1)
    assert effective_rank(task.table) == pytest.approx(1.0)
    # majority3 laid out 2 x 4: [[0,0,0,1],[0,1,1,1]]
    maj = make_task("majority3")
    assert maj.complexity == pytest.approx(effective_rank(np.array([[0, 0, 0, 1], [0, 1, 1, 1]])))
    # parity4 laid out 4 x 4
    p4 = make_task("parity4").table[:, 0].reshape(4, 4)
    assert make_task("parity4").complexity == pytest.approx(effective_rank(p4))


def test_multi_output_complexity_uses_the_target_matrix() -> None:
    task = make_task("xor+and")
    assert task.n_outputs == 2
    target = np.array([[0, 0], [1, 0], [1, 0], [0, 1]])
    assert task.complexity == pytest.approx(effective_rank(target))
    assert task_complexity(target) == pytest.approx(effective_rank(target))
    # identical outputs: rank one
    assert make_task("xor+xor").complexity == pytest.approx(1.0)


def test_task_complexity_accepts_a_flat_table() -> None:
    assert task_complexity(np.array([0, 1, 1, 0])) == pytest.approx(2.0)


# ----------------------------------------------------------------- the tasks command


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from circuit_census.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tasks_command_lists_xor_with_complexity_two(capsys) -> None:
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 4}
    assert {t.name for t in builtin_tasks()} <= set(rows)
    cells = [c.strip() for c in rows["xor"].split("│")[1:-1]]
    assert cells == ["xor", "2", "1", "2.000", "0110"]
    assert [c.strip() for c in rows["or"].split("│")[1:-1]][3] == "1.803"


def test_tasks_command_json(capsys) -> None:
    code, out, _ = run_cli(capsys, "tasks", "--json")
    assert code == 0
    payload = json.loads(out)
    by_name = {t["name"]: t for t in payload["tasks"]}
    assert len(by_name) == len(builtin_tasks())
    assert by_name["xor"] == {
        "name": "xor",
        "n_inputs": 2,
        "n_outputs": 1,
        "complexity": pytest.approx(2.0),
        "truth_table": ["0110"],
    }
    assert by_name["and"]["complexity"] == pytest.approx(1.0)
    assert by_name["parity3"]["n_inputs"] == 3
    assert "effective rank" in payload["complexity_definition"]


def test_tasks_command_describes_given_specs(capsys) -> None:
    code, out, _ = run_cli(capsys, "tasks", "xor+and", "--json")
    assert code == 0
    (task,) = json.loads(out)["tasks"]
    assert task["n_outputs"] == 2 and task["truth_table"] == ["0110", "0001"]


def test_tasks_command_rejects_unknown_task(capsys) -> None:
    code, out, err = run_cli(capsys, "tasks", "frobnicate")
    assert code == 2
    assert err.startswith("error: unknown task") and "Traceback" not in err

"""``circuit-census tasks``: the built-in tasks with their size and complexity."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from circuit_census.tasks.boolean import Task, builtin_tasks, make_task

COMPLEXITY_NOTE = (
    "complexity: effective rank (Roy & Vetterli) of the truth table laid out as a "
    "2^floor(n/2) x 2^ceil(n/2) matrix (one output) or of the 2^n x m target matrix "
    "(m outputs), as docs/definitions.md defines task complexity"
)


def truth_tables(task: Task) -> list[str]:
    """One bit string per output, corners in order (most significant input first)."""
    return ["".join(str(int(b)) for b in task.table[:, o]) for o in range(task.n_outputs)]


def task_record(task: Task) -> dict:
    """A task as a JSON-friendly dict."""
    return {
        "name": task.name,
        "n_inputs": task.n_inputs,
        "n_outputs": task.n_outputs,
        "complexity": task.complexity,
        "truth_table": truth_tables(task),
    }


def tasks(
    specs: list[str] | None = typer.Argument(
        None,
        help="Task specs to describe instead of the built-in list (e.g. xor 0110 xor+and).",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """List the built-in tasks (or the given ones): inputs, outputs, complexity, truth table."""
    chosen = [make_task(s) for s in specs] if specs else builtin_tasks()
    records = [task_record(t) for t in chosen]
    if as_json:
        payload = {"complexity_definition": COMPLEXITY_NOTE, "tasks": records}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    table = Table(title="Tasks")
    table.add_column("name", no_wrap=True)
    table.add_column("inputs", justify="right")
    table.add_column("outputs", justify="right")
    table.add_column("complexity", justify="right")
    table.add_column("truth table", overflow="fold")
    for r in records:
        table.add_row(
            r["name"],
            str(r["n_inputs"]),
            str(r["n_outputs"]),
            f"{r['complexity']:.3f}",
            " ".join(r["truth_table"]),
        )
    console = Console(file=sys.stdout)
    console.print(table)
    # one line below the table (a caption would be wrapped to the table's width)
    console.print(COMPLEXITY_NOTE, soft_wrap=True, highlight=False)

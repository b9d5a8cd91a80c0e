"""Every message a user sees is one clear line: durations and rates worded one way, no
library advice or terminal escapes leaking from NumPy, zip or PyTorch, thousands
separators for counts, no "n/a" in summaries and no ``<bool>`` beside flags in ``--help``."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES
from circuit_census.circuits.space import CircuitSpace
from circuit_census.cli.progress import format_duration, format_rate, make_progress
from circuit_census.measures.uniqueness import circuit_measures
from circuit_census.network import Network
from circuit_census.training.modelfiles import _first_line, save_data, save_model

# Text that NumPy, zipfile and PyTorch put in their errors, never in ours.
LEAKS = ("allow_pickle", "pickle.load", "If you trust", "weights_only", "Traceback",
         "File is not a zip", "PytorchStreamReader", "enforce fail", "\x1b")  # fmt: skip


def one_line_error(code: int, stderr: str) -> str:
    """The single line of a bad-input error (exit code 2), checked for leaked text."""
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for leak in LEAKS:
        assert leak not in stderr, stderr
    return lines[0]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """An XOR model (relu(a + b) - 2 relu(a + b - 1)) and its four corners as data."""
    network = Network(
        (np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[1.0, -2.0]])),
        (np.array([0.0, -1.0]), np.array([0.0])),
        "relu",
    )
    model = tmp_path / "xor.safetensors"
    save_model(model, network)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    data = tmp_path / "xor.npz"
    save_data(data, corners, np.array([[0.0], [1.0], [1.0], [0.0]]))
    return {"model": model, "data": data, "dir": tmp_path, "x": corners}


# ----------------------------------------------------------------- durations and rates


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.0, "under a second"),
        (0.4, "under a second"),
        (85.9, "about 86 s"),
        (180, "about 3 min"),
        (4.2 * 3600, "about 4.2 h"),
        (30 * 3600, "about 30 h"),
        (12 * 86_400, "about 12 days"),
        (3 * 365.25 * 86_400, "about 3 years"),
        (1234.5 * 365.25 * 86_400, "about 1,230 years"),
        (7.66e8 * 365.25 * 86_400, "about 766,000,000 years"),
        (2.2e23 * 365.25 * 86_400, "about 2.2e23 years"),
        (float("inf"), "more than 10^300 years"),
    ],
)
def test_a_duration_is_said_one_way(seconds, text):
    assert format_duration(seconds) == text


def test_long_durations_have_at_most_three_significant_figures():
    for exponent in range(8, 30):
        text = format_duration(1.23456789 * 10.0**exponent)
        assert "about about" not in text
        number = text.split()[1]
        assert len(re.sub(r"e\d+$", "", number).replace(",", "").replace(".", "").strip("0")) <= 3


@pytest.mark.parametrize(
    "rate, text",
    [
        (0.5, "0.5 candidates/s"),
        (33.2, "33 candidates/s"),
        (1_234_567.4, "1,234,567 candidates/s"),
        (1.2e9, "1.2e9 candidates/s"),
        (2.5e10, "2.5e10 candidates/s"),
    ],
)
def test_a_rate_is_said_one_way(rate, text):
    assert format_rate(rate) == text


# ----------------------------------------------------------------- count and census lines


def test_count_says_the_time_once_and_when_a_census_would_be_refused(cli):
    code, out, err = cli(["count", "--hidden", "4"])
    assert code == 0, err
    assert out.strip() == (
        "2-4-1: 255 candidate circuits; census time under a second if every pair is "
        "scored, usually far less"
    )
    code, out, _ = cli(["count", "--hidden", "16"])
    assert "census time about 86 s" in out and "about about" not in out
    assert "refused" not in out  # 4,294,967,295 is below the default limit
    code, out, _ = cli(["count", "--hidden", "40"])
    assert code == 0
    assert len(out.strip().splitlines()) == 1
    assert "census time about 766,000,000 years" in out
    assert (
        f"a census would be refused above {DEFAULT_MAX_CANDIDATES:,} candidates unless "
        "--max-candidates is raised" in out
    )
    assert "10,000,000,000" in out


def test_count_of_a_huge_space_is_one_line(cli):
    code, out, err = cli(["count", "--hidden", "600"])  # more candidates than a float holds
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1
    assert "more than 10^300 years" in out and "refused" in out


def test_census_says_the_time_once_and_a_refusal_says_how_to_go_on(cli, files):
    args = ["census", "--model", str(files["model"]), "--data", str(files["data"])]
    code, out, err = cli(args)
    assert code == 0, err
    assert "15 candidate circuits of 2-2-1; under a second if every pair is scored" in out
    assert "about about" not in out and "about under" not in out
    assert re.search(r"\(\d[\d,.e]* candidates/s; ", out)
    line = one_line_error(*cli([*args, "--max-candidates", "3"])[::2])
    assert "15 candidate circuits exceed --max-candidates 3" in line
    assert "raise --max-candidates" in line and "under a second" in line


# ----------------------------------------------------------------- data files


def data_cases(tmp: Path) -> dict[str, Path]:
    made = {}
    made["csv"] = tmp / "data.csv"
    made["csv"].write_text("a,b\n0,1\n1,0\n")
    made["npy"] = tmp / "x.npy"
    np.save(made["npy"], np.zeros((4, 2)))
    made["pickled_npy"] = tmp / "objects.csv"  # a pickled object array, whatever its name
    with open(made["pickled_npy"], "wb") as fh:
        np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    made["pickled_npz"] = tmp / "objects.npz"
    np.savez(made["pickled_npz"], x=np.array([{"a": 1}], dtype=object))
    made["empty"] = tmp / "empty.npz"
    made["empty"].write_bytes(b"")
    good = tmp / "good.npz"
    np.savez(good, x=np.zeros((4, 2)), y=np.zeros(4))
    made["truncated"] = tmp / "truncated.npz"
    made["truncated"].write_bytes(good.read_bytes()[:200])
    made["strings"] = tmp / "strings.npz"
    np.savez(made["strings"], x=np.array([["a", "b"]]))
    made["complex"] = tmp / "complex.npz"
    np.savez(made["complex"], x=np.zeros((4, 2)) + 1j)
    made["not_npy"] = tmp / "junk.npz"
    with zipfile.ZipFile(made["not_npy"], "w") as archive:
        archive.writestr("x.npy", b"not an array")
    made["no_x"] = tmp / "nox.npz"
    np.savez(made["no_x"], inputs=np.zeros((4, 2)))
    return made


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("csv", "it is not an .npz archive"),
        ("npy", "it is a single .npy array, not an .npz archive"),
        ("pickled_npy", "it is a single .npy array"),
        ("pickled_npz", "array 'x' holds Python objects"),
        ("empty", "it is empty"),
        ("truncated", "it is damaged or truncated"),
        ("strings", "array 'x' is not numeric (dtype <U1)"),
        ("complex", "array 'x' is not numeric (dtype complex128)"),
        ("not_npy", "array 'x' is not numeric (not an array)"),
        ("no_x", "has no array 'x'"),
    ],
)
def test_a_bad_data_file_says_what_the_tool_needs(cli, files, case, fragment):
    path = data_cases(files["dir"])[case]
    line = one_line_error(
        *cli(["census", "--model", str(files["model"]), "--data", str(path)])[::2]
    )
    assert path.name in line and fragment in line
    assert line.endswith(
        "a data file must be an .npz archive (numpy.savez) with a numeric array 'x' and, for "
        "the accuracy criterion, 'y'; pickled data is never loaded"
    )


# ----------------------------------------------------------------- model files


def test_a_pickled_module_gets_one_clean_line_saying_to_save_its_state_dict(cli, files):
    path = files["dir"] / "module.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), path)
    argv = ["census", "--model", str(path), "--data", str(files["data"]), "--activation", "relu"]
    line = one_line_error(*cli(argv)[::2])
    assert line == (
        "error: refusing to load module.pt: not a plain tensor state_dict but pickled Python "
        "objects (a whole model saved with torch.save(model)?), and pickles are never loaded; "
        "save model.state_dict() with torch.save (or use a circuit-census .safetensors file)"
    )


def test_a_checkpoint_that_is_not_a_state_dict_says_which_entry(cli, files):
    path = files["dir"] / "checkpoint.pt"
    torch.save({"model": {"0.weight": torch.ones(2, 2)}, "epoch": torch.tensor(3)}, path)
    argv = ["census", "--model", str(path), "--data", str(files["data"]), "--activation", "relu"]
    line = one_line_error(*cli(argv)[::2])
    assert "entry 'model' is a dict" in line and "model.state_dict()" in line


def test_a_data_file_given_as_the_model_says_so(cli, files):
    argv = ["census", "--model", str(files["data"]), "--data", str(files["data"]),
            "--activation", "relu"]  # fmt: skip
    line = one_line_error(*cli(argv)[::2])
    assert "xor.npz is an .npz data file, not a model: pass it as --data" in line


def test_library_error_text_loses_escapes_and_is_cut_between_words():
    exc = RuntimeError(
        "Weights only load failed. \x1b[1mdo those steps only if you trust the source\x1b[0m."
        "\n\t(1) second line " + "word " * 60
    )
    text = _first_line(exc, limit=40)
    assert "\x1b" not in text and "[1m" not in text and "\n" not in text
    assert text == "Weights only load failed. do those steps..."
    long = _first_line(ValueError("alpha beta gamma delta epsilon"), limit=14)
    assert long == "alpha beta..."
    assert _first_line(ValueError("short")) == "short"
    assert _first_line(ValueError("")) == "ValueError"


# ----------------------------------------------------------------- census summary


def test_summary_says_no_valid_circuit_instead_of_n_a(cli, files):
    data = files["dir"] / "not_xor.npz"
    save_data(data, files["x"], np.array([[1.0], [0.0], [0.0], [1.0]]))
    argv = ["census", "--model", str(files["model"]), "--data", str(data),
            "--criterion", "accuracy"]  # fmt: skip
    code, out, err = cli(argv)
    assert code == 0, err
    assert "0 valid of 15 candidates" in out
    assert "  no valid circuit" in out.splitlines()
    assert "n/a" not in out and "None" not in out


def test_summary_lines_never_say_n_a():
    space = CircuitSpace((2, 2, 1))
    none = circuit_measures(np.zeros((0, space.n_words), dtype=np.uint64), space)
    assert none.summary_lines() == ["no valid circuit"]
    masks = [np.array([[1, 0], [0, 0]]), np.array([[1, 0]])]
    one = circuit_measures(space.masks_to_bits(masks)[None, :], space)
    lines = one.summary_lines()
    assert lines == [
        "valid circuits: 1; minimal: 1 (identifiable: yes)",
        "smallest valid circuit: 2 edges, 3 nodes",
        "pairs of valid circuits: none (one valid circuit)",
    ]


# ----------------------------------------------------------------- help and progress


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["census", "--help"],
        ["count", "--help"],
        ["tasks", "--help"],
        ["train", "--help"],
        ["study", "run", "--help"],
    ],  # fmt: skip
)
def test_help_shows_no_type_beside_flags(cli, argv):
    code, out, err = cli(argv)
    assert code == 0, err
    assert "--help" in out
    assert "<bool>" not in out


def test_tasks_note_is_one_line(cli):
    code, out, _ = cli(["tasks", "xor"])
    assert code == 0
    (note,) = [line for line in out.splitlines() if "effective rank" in line]
    assert note.startswith("complexity: ") and note.rstrip().endswith("task complexity")


def test_census_bar_shows_counts_with_separators_and_a_rate_on_one_line():
    progress = make_progress()
    task = progress.add_task("census", total=4_294_967_295)
    progress.update(task, completed=100_000_000)
    time.sleep(0.05)
    progress.update(task, completed=515_396_075)
    console = Console(width=80, color_system=None, record=True)
    console.print(progress.make_tasks_table(progress.tasks))
    text = console.export_text()
    assert len(text.strip().splitlines()) == 1, text
    assert "515,396,075/4,294,967,295" in text
    assert re.search(r"\d[\d,.e]* candidates/s", text), text
    assert "eta" in text

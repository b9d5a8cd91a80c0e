"""Census figures render without error to non-empty PNG and SVG files of the expected size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from brute_force import admissible_edge_flags
from matplotlib.figure import Figure
from matplotlib.image import imread

from circuit_census.circuits.census import CensusResult
from circuit_census.circuits.space import CircuitSpace, bools_to_bits
from circuit_census.errors import InputError
from circuit_census.measures.figures import (
    FIGURE_DPI,
    node_label,
    plot_circuit,
    plot_frequency_heatmap,
    plot_minimal_grid,
    plot_size_distribution,
    save_figure,
    write_census_figures,
)
from circuit_census.measures.uniqueness import circuit_measures, minimal_circuits
from circuit_census.network import Network
from circuit_census.tasks.boolean import corners

# The hand-made XOR network: relu(x0 + x1) - 2 relu(x0 + x1 - 1) = XOR on the corners.
XOR = Network(
    (np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[1.0, -2.0]])),
    (np.array([0.0, -1.0]), np.array([0.0])),
)


def brute_census(network: Network, x: np.ndarray, threshold: float = 0.05) -> CensusResult:
    """Every admissible circuit, zero-ablated by hand, valid when the MSE is below threshold."""
    space = CircuitSpace(network.sizes)
    ref = network.forward(x)
    valid = []
    n_candidates = 0
    for flags, masks in admissible_edge_flags(space):
        n_candidates += 1
        ablated = Network(
            tuple(w * m for w, m in zip(network.weights, masks, strict=True)),
            network.biases,
            network.activation,
            network.output_activation,
        )
        if np.mean((ablated.forward(x) - ref) ** 2) < threshold:
            valid.append(flags)
    bits = bools_to_bits(np.array(valid, dtype=bool).reshape(-1, space.n_edges), space.n_words)
    return CensusResult(space, network, n_candidates, len(valid), bits, {"criterion": "mse"})


@pytest.fixture(scope="module")
def redundant_net() -> Network:
    """A random 2-4-1 network with several minimal circuits at MSE threshold 0.1."""
    rng = np.random.default_rng(21)
    w1, w2 = rng.normal(size=(4, 2)), rng.normal(size=(1, 4))
    return Network((w1, w2), (rng.normal(size=4) * 0.3, np.zeros(1)))


def assert_png(path: Path, fig: Figure) -> None:
    assert path.suffix == ".png" and path.stat().st_size > 1000
    image = imread(path)
    w, h = fig.get_size_inches() * FIGURE_DPI
    assert image.shape[:2] == (round(h), round(w))
    assert image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.05  # not blank


def assert_svg(path: Path) -> None:
    text = path.read_text()
    assert path.stat().st_size > 1000 and "<svg" in text and text.rstrip().endswith("</svg>")


def test_node_labels() -> None:
    assert [node_label(0, 1, 2), node_label(1, 2, 2), node_label(2, 0, 2)] == ["x1", "h1.2", "y0"]
    assert node_label(3, 0, 3, output=1) == "y1"


def test_xor_network_is_exact() -> None:
    np.testing.assert_allclose(XOR.forward(corners(2))[:, 0], [0, 1, 1, 0])


def test_plot_circuit_png_and_svg(tmp_path: Path) -> None:
    space = CircuitSpace(XOR.sizes)
    masks = [np.array([[1, 1], [0, 0]]), np.array([[1, 0]])]
    fig = plot_circuit(XOR, masks, space, title="half of XOR")
    assert isinstance(fig, Figure)
    png, svg = save_figure(fig, tmp_path, "circuit")
    assert (png.name, svg.name) == ("circuit.png", "circuit.svg")
    assert_png(png, fig)
    assert_svg(svg)
    assert "half of XOR" in fig.axes[0].get_title()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"x0", "x1", "h1.0", "h1.1", "y0"} <= texts
    # bitsets draw the same circuit as masks
    fig2 = plot_circuit(XOR, space.masks_to_bits(masks), space, title="half of XOR")
    assert [line.get_color() for line in fig.axes[0].lines] == [
        line.get_color() for line in fig2.axes[0].lines
    ]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "positive weight",
        "negative weight",
        "ablated edge",
        "node outside circuit",
    ]


def test_plot_circuit_colours_by_sign_and_fades_the_rest() -> None:
    space = CircuitSpace(XOR.sizes)
    masks = [np.array([[1, 1], [1, 1]]), np.array([[0, 1]])]
    fig = plot_circuit(XOR, masks, space)
    colours = [line.get_color() for line in fig.axes[0].lines]
    assert len(colours) == space.n_edges
    assert colours.count("#c0392b") == 1  # the -2 weight, in the circuit
    assert colours.count("#2166ac") == 4  # the four +1 weights into the hidden layer
    assert colours.count("#c9c9c9") == 1  # the ablated h1.0 -> y0 edge


def test_plot_circuit_rejects_wrong_masks() -> None:
    with pytest.raises(InputError):
        plot_circuit(XOR, [np.ones((3, 2)), np.ones((1, 3))])


def test_write_census_figures(tmp_path: Path, redundant_net: Network) -> None:
    result = brute_census(redundant_net, corners(2), threshold=0.1)
    assert result.n_candidates == 255 and result.n_valid > 10
    minimal = minimal_circuits(result.valid)
    measures = circuit_measures(result.valid, result.space, minimal=minimal)
    assert measures.n_minimal >= 2
    paths = write_census_figures(result, measures, minimal, tmp_path / "figs")
    names = sorted(p.name for p in paths)
    expected = ["circuit", "frequency", "minimal_circuits", "sizes"]
    assert names == sorted(f"{n}.{ext}" for n in expected for ext in ("png", "svg"))
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
        if p.suffix == ".png":
            image = imread(p)
            assert image.ndim == 3 and min(image.shape[:2]) > 300
        else:
            assert_svg(p)
    assert not [p for p in (tmp_path / "figs").iterdir() if p.name.endswith(".tmp")]


def test_write_census_figures_per_output_prefix(tmp_path: Path) -> None:
    result = brute_census(XOR, corners(2))
    assert result.n_valid == 1  # every weight of the exact XOR network is needed
    result.output = 1
    minimal = minimal_circuits(result.valid)
    measures = circuit_measures(result.valid, result.space, minimal=minimal)
    paths = write_census_figures(result, measures, minimal, tmp_path)
    assert all(p.name.startswith("output1_") for p in paths)


def test_write_census_figures_needs_valid(tmp_path: Path) -> None:
    result = brute_census(XOR, corners(2))
    measures = circuit_measures(result.valid, result.space)
    result.valid = None
    with pytest.raises(InputError):
        write_census_figures(result, measures, np.zeros((0, 1), np.uint64), tmp_path)


def test_minimal_grid_says_how_many_were_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    net = Network((rng.normal(size=(4, 2)), rng.normal(size=(1, 4))), (np.zeros(4), np.zeros(1)))
    space = CircuitSpace(net.sizes)
    paths = []  # the eight single-path circuits x_i -> h_j -> y0
    for j in range(4):
        for i in range(2):
            m1 = np.zeros((4, 2))
            m1[j, i] = 1
            m2 = np.zeros((1, 4))
            m2[0, j] = 1
            paths.append(space.masks_to_bits([m1, m2]))
    fig = plot_minimal_grid(net, np.array(paths), space, max_panels=5)
    assert "8 minimal circuits" in fig.get_suptitle() and "3 left out" in fig.get_suptitle()
    drawn = [ax for ax in fig.axes if ax.get_title()]
    assert len(drawn) == 5
    png, svg = save_figure(fig, tmp_path, "grid")
    assert_png(png, fig)
    assert_svg(svg)


def test_figures_for_no_valid_circuits(tmp_path: Path) -> None:
    space = CircuitSpace(XOR.sizes)
    empty = np.zeros((0, space.n_words), dtype=np.uint64)
    measures = circuit_measures(empty, space)
    for name, fig in [
        ("grid", plot_minimal_grid(XOR, empty, space)),
        ("freq", plot_frequency_heatmap(measures, space)),
        ("sizes", plot_size_distribution(empty, space, minimal=empty)),
    ]:
        png, svg = save_figure(fig, tmp_path, name)
        assert_png(png, fig)
        assert_svg(svg)


def test_frequency_heatmap_and_size_distribution(tmp_path: Path, redundant_net: Network) -> None:
    result = brute_census(redundant_net, corners(2), threshold=0.1)
    minimal = minimal_circuits(result.valid)
    measures = circuit_measures(result.valid, result.space, minimal=minimal)
    fig = plot_frequency_heatmap(measures, result.space)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"nodes", "edges W1", "edges W2"} <= set(titles)
    png, _ = save_figure(fig, tmp_path, "freq")
    assert_png(png, fig)
    fig = plot_size_distribution(result.valid, result.space, minimal=minimal)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == pytest.approx(result.n_valid + len(minimal))
    png, _ = save_figure(fig, tmp_path, "sizes")
    assert_png(png, fig)

"""Small sweep files shared by the study tests, and a study's stored table to compare runs."""

from circuit_census.experiments.store import Store

TIMINGS = ("train_seconds", "census_seconds", "created_at")

# Width 6, 7 and 8 on XOR, 6 seeds each: 18 rows, a few seconds in one process, long
# enough to interrupt a study or start a second run beside it mid-way.
WIDTH_SWEEP = """
[defaults]
task = "xor"
seeds = 6
[defaults.training]
epochs = 300
[experiments.w]
factor = "width"
levels = [6, 7, 8]
"""


def table(path) -> list[dict]:
    """A study's rows without timings, and its stored circuits."""
    with Store(path) as store:
        out = []
        for row in store.rows():
            row = {k: v for k, v in row.items() if k not in TIMINGS}
            row["circuits"] = [
                (
                    c["output"],
                    c["kind"],
                    c["n_total"],
                    store.circuits(row["key"], c["kind"], c["output"]).tolist(),
                )
                for c in store.circuit_counts(row["key"])
            ]
            out.append(row)
        return out

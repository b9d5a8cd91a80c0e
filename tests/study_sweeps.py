"""Small sweep files shared by the study tests."""

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

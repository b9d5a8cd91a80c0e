"""Tasks: Boolean functions, the data sets drawn from them, and their complexity."""

"""circuit-census: exact censuses of every circuit in small MLPs trained on Boolean tasks."""

__version__ = "0.1.0"

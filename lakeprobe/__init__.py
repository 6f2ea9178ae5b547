"""lakeprobe: continuous smoke tests for data-lake storage endpoints."""

__version__ = "0.1.0"

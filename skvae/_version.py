"""The package version, in one place (read by pyproject.toml and saved in model files)."""

__version__ = "0.1.0.dev0"

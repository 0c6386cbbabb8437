"""backout's settings model, below every package that uses it (see config/settings.py)."""

from config.settings import CONFIG_FILE_ENV, EvalTarget, EvidenceQuery, Settings, SettingsError, load_settings

__all__ = ["CONFIG_FILE_ENV", "EvalTarget", "EvidenceQuery", "Settings", "SettingsError", "load_settings"]

"""Settings: the pydantic model, loading with clear errors, TOML edits, legacy INI, reload."""

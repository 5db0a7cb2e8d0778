"""Configuration: strict pydantic schema, YAML loader, environment settings."""

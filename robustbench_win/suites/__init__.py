"""Shipped suite presets (TOML files)."""

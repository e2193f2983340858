"""Rendering: templates in a sandbox with per-locale fallback, SMS segments, and the links messages carry."""

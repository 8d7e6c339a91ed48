"""Sphinx configuration for the trio-smtp docs (built with -W in CI)."""

from __future__ import annotations

project = "trio-smtp"
author = "trio-smtp developers"
copyright = "2026, trio-smtp developers"
release = "0.1.0.dev0"

# myst_parser: pages the issues name as Markdown (streaming.md, bulk.md,
# interop.md) are written in Markdown; the rest stay reStructuredText.
extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
default_role = "py:obj"
# The stdlib inventory cannot be fetched offline; references to it stay plain.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
suppress_warnings = ["ref.python"]

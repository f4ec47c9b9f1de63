"""Markdown reports: the isotropic model's V1–V4 verification and a sweep's analysis."""

from __future__ import annotations

from .isotropic import render_report, write_report

__all__ = ["render_report", "write_report"]

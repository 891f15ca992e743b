"""The HTML report of the claim ledger: one self-contained page, verdict table first."""

from .html import render_report, write_report

"""The report stage: tables (Markdown, CSV), figures (matplotlib, Agg) and a self-contained index.html, rebuilt
from evaluation JSONs alone. Imports neither torch nor open_clip nor h5py, so it runs where only results are."""

from pipeline.evaluate_params import ReportSettings, report_settings
from pipeline.report.build import build_report

__all__ = ["ReportSettings", "build_report", "report_settings"]

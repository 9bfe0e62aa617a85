"""`rnnbench report`: a static site from the MLflow store. store.py reads the runs, tables.py scores them,
plots.py and sections.py draw, site.py writes the pages from templates/."""
from suite.report.site import build, report

__all__ = ["build", "report"]

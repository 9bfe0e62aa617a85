"""`rnnbench report`: a static site from the MLflow store. suite/runs.py reads the runs and suite/scoring.py scores
them; here tables.py formats facts and leaderboard.csv, plots.py and sections.py draw, site.py writes the pages
from templates/."""
from suite.report.site import report, write_site

__all__ = ["report", "write_site"]

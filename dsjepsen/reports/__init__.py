"""Reports: a run directory -> one self-contained report.html."""

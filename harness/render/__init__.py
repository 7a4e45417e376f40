"""Renderers: each turns `Results` into one artifact of the run folder (html.py for
report.html, junit.py, markdown.py for summary.md, csv.py for items.csv)."""

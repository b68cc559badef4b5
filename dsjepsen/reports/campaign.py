"""A campaign's index.html: the matrix of verdicts (a row per configuration, a column per seed,
each cell linking to its run's report), the findings and the flaky configurations, rendered
from the data campaign.json holds (`harness/campaign.py` computes it; this only draws it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_index(data: Mapping[str, Any]) -> str:
    """index.html of a campaign from its campaign.json data."""
    import jinja2  # only needed once a campaign is written

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    rows = {r["id"]: r for r in data["rows"]}
    seeds = sorted({r["seed"] for r in data["rows"]})
    grid = []
    for c in data["summary"]["configurations"]:
        by_seed = {rows[i]["seed"]: rows[i] for i in c["runs"]}
        grid.append({"conf": c, "cells": [by_seed.get(s) for s in seeds]})
    return env.get_template("campaign.html.j2").render(
        data=data, seeds=seeds, grid=grid, summary=data["summary"]
    )

"""The experiment catalog: every shipped experiment has a page and an index row, every page
and sweep names an experiment that exists."""

from __future__ import annotations

import re

import pytest
import tomllib

from kvfabric.spec import EXPERIMENTS_DIR, shipped_experiments
from kvfabric.sweep_plan import shipped_sweeps

REQUIRED_HEADINGS = ("## Question", "## Expected result", "## Reproduces", "## Knobs",
                     "## Run it")
PAGES = sorted(p for p in EXPERIMENTS_DIR.glob("*.md") if p.name != "README.md")


@pytest.mark.parametrize("name", sorted(shipped_experiments()))
def test_every_shipped_experiment_has_a_page_and_an_index_row(name):
    page = EXPERIMENTS_DIR / f"{name}.md"
    assert page.exists(), (f"experiments/{name}.toml has no page: write experiments/{name}.md "
                           "(copy experiments/tcp_incast.md, keep its headings)")
    index = (EXPERIMENTS_DIR / "README.md").read_text()
    assert f"]({name}.md)" in index, f"add a row for {name} to experiments/README.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_page_names_an_existing_experiment_and_has_the_headings(page):
    assert page.stem in shipped_experiments(), (
        f"{page.name} describes no shipped experiment: rename it or add {page.stem}.toml")
    text = page.read_text()
    for heading in REQUIRED_HEADINGS:
        assert heading in text, f"{page.name} lacks '{heading}'"
    assert f"kvfabric run {page.stem}" in text, f"{page.name}: show how to run it"


def test_index_links_only_to_existing_pages_and_sweeps():
    index = (EXPERIMENTS_DIR / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", index):
        if not target.startswith(("http", "../")):
            assert (EXPERIMENTS_DIR / target).exists(), f"experiments/README.md links {target}"


@pytest.mark.parametrize("name", sorted(shipped_sweeps()))
def test_every_sweep_names_an_existing_experiment_and_is_in_the_catalog(name):
    table = tomllib.loads(shipped_sweeps()[name].read_text())["sweep"]
    assert table["spec"] in shipped_experiments()
    page = (EXPERIMENTS_DIR / f"{table['spec']}.md").read_text()
    assert f"kvfabric sweep {name}" in page, f"{table['spec']}.md should show the sweep {name}"

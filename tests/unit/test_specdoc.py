"""docs/spec-reference.md is generated from the schema and must match it."""

from __future__ import annotations

from kvfabric import specdoc
from kvfabric.spec_fields import EXPERIMENT_FIELDS, FABRIC_FIELDS
from kvfabric.workloads import WORKLOADS


def test_committed_reference_matches_the_schema():
    committed = specdoc.REFERENCE_PATH.read_text() if specdoc.REFERENCE_PATH.exists() else ""
    assert committed == specdoc.render(), (
        f"docs/spec-reference.md is out of date with the schema: run {specdoc.REGENERATE} "
        "and commit the result")


def test_every_field_of_every_section_and_workload_is_documented():
    page = specdoc.render()
    for field in EXPERIMENT_FIELDS:
        assert f"`experiment.{field.name}`" in page
    for field in FABRIC_FIELDS:
        assert f"`fabric.{field.name}`" in page
    for kind, module in WORKLOADS.items():
        assert f'kind = "{kind}"' in page
        for field in module.FIELDS:
            assert f"`workload.{field.name}`" in page


def test_new_sections_are_discovered(monkeypatch):
    """A section added to kvfabric.spec_fields as <NAME>_FIELDS appears without touching
    specdoc."""
    from kvfabric import spec_fields
    from kvfabric.schema import Field

    monkeypatch.setattr(spec_fields, "PACING_FIELDS",
                        [Field("gap", "duration", "5us", "gap between paced frames")],
                        raising=False)
    page = specdoc.render()
    assert "## [pacing]" in page and "`pacing.gap`" in page and "paced frames" in page


def test_sections_are_named_as_validate_resolves_them():
    """QUEUE_FIELDS is resolved as [queues]: the page uses the name specs are written with."""
    from kvfabric import spec_fields

    names = list(specdoc.spec_sections())
    assert names[:2] == ["experiment", "fabric"]
    if hasattr(spec_fields, "QUEUE_FIELDS"):
        assert "queues" in names and "queue" not in names


def test_units_and_defaults_are_shown():
    page = specdoc.render()
    line = next(ln for ln in page.splitlines() if ln.startswith("| `fabric.buffer`"))
    assert "bytes" in line and '"64KiB"' in line
    line = next(ln for ln in page.splitlines() if ln.startswith("| `fabric.target_rate`"))
    assert "bit/s" in line and "1.6e+03 Gbit/s" in line


def test_check_flag_reports_out_of_date(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "spec-reference.md"
    stale.write_text("old\n")
    monkeypatch.setattr(specdoc, "REFERENCE_PATH", stale)
    from kvfabric import cli

    assert cli.main(["spec-doc", "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert cli.main(["spec-doc", "--write", str(stale)]) == 0
    assert cli.main(["spec-doc", "--check"]) == 0


def test_free_form_sections_are_documented_from_section_docs(monkeypatch):
    from kvfabric import spec_fields

    monkeypatch.setattr(spec_fields, "SECTION_DOCS",
                        {"tenants": "`name = [hosts]`, one per tenant."}, raising=False)
    page = specdoc.render()
    assert "## [tenants]\n\n`name = [hosts]`, one per tenant." in page

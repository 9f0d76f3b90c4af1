"""The bad-spec collection (tests/specs/bad/*.toml): each is rejected naming its field, the
problem and the fix, with exit status 2 and nothing written.

Each file's first line says what must be reported:
``# expect: FIELD | words of the problem | words of the fix``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfabric import cli
from kvfabric.schema import SpecError
from kvfabric.spec import load_spec

BAD_DIR = Path(__file__).resolve().parent.parent / "specs" / "bad"
BAD_SPECS = sorted(BAD_DIR.glob("*.toml"))


def expectation(path: Path) -> tuple[str, str, str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect:"), f"{path.name}: first line must be '# expect: ...'"
    field, problem, fix = (part.strip() for part in first.removeprefix("# expect:").split("|"))
    return field, problem, fix


def test_the_collection_covers_the_kinds_of_mistake():
    names = {p.stem for p in BAD_SPECS}
    assert {"unknown_field", "unknown_section", "wrong_type_int", "buffer_below_mtu",
            "more_senders_than_hosts", "not_toml"} <= names


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_bad_spec_names_field_problem_and_fix(path):
    field, problem, fix = expectation(path)
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    matching = [i for i in info.value.issues if i.field == field or
                (field.endswith(".toml") and i.field.endswith(field))]
    assert matching, f"no issue for {field}; got {[str(i) for i in info.value.issues]}"
    issue = matching[0]
    assert problem in issue.problem, str(issue)
    assert fix in issue.fix, str(issue)


@pytest.mark.parametrize("path", BAD_SPECS, ids=lambda p: p.stem)
def test_cli_run_exits_2_and_writes_nothing(path, tmp_path, capsys):
    field, _, _ = expectation(path)
    code = cli.main(["run", str(path), "--results", str(tmp_path / "results")])
    assert code == 2
    assert field.split(".toml")[0] in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("override,field", [
    ("workload.senders=99", "workload.senders"),
    ("fabric.buffer=100", "fabric.buffer"),
    ("fabric.target_rate=fast", "fabric.target_rate"),
    ("fabric.nope=1", "fabric.nope"),
])
def test_bad_override_is_rejected_like_a_bad_file(override, field, tmp_path, capsys):
    code = cli.main(["run", "tcp_incast", "--set", override,
                     "--results", str(tmp_path / "results")])
    assert code == 2 and field in capsys.readouterr().err
    assert not (tmp_path / "results").exists()

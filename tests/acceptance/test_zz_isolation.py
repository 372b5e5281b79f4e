"""Runs last (file order): nothing this suite did touched a stack that was not its own."""

from __future__ import annotations

import pytest

from tests.acceptance.conftest import SENTINEL_ROW, default_project_snapshot
from tests.acceptance.stack import RUN_PREFIX, SUITE_PREFIX, NotOurs, remove_stack, run


def test_sentinel_stack_is_intact(sentinel):
    """Started before every destructive test: same container, never restarted, same row."""
    stack = sentinel["stack"]
    info = stack.inspect()
    assert info["Id"] == sentinel["container_id"]
    assert info["State"]["Running"] is True
    assert info["State"]["StartedAt"] == sentinel["started_at"]
    assert run(["docker", "volume", "inspect", stack.volume]).returncode == 0
    assert stack.query("SELECT note FROM sentinel") == [(SENTINEL_ROW,)]


def test_developer_default_stack_is_untouched(developer_stack_before):
    assert default_project_snapshot() == developer_stack_before


@pytest.mark.parametrize(
    "project",
    ["ai-interviewer", "", SUITE_PREFIX + "someone-elses-run-x", RUN_PREFIX, "devdb-test"],
)
def test_teardown_can_only_name_this_runs_projects(project):
    with pytest.raises(NotOurs):
        remove_stack(project, {})


def test_no_lock_file_of_this_run_is_left_in_the_temporary_directory():
    import tempfile
    from pathlib import Path

    assert list(Path(tempfile.gettempdir()).glob(f"devdb-{RUN_PREFIX}*.lock")) == []

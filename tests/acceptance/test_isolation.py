"""Teardown can only remove this run's own projects (the checks after the last test are in
conftest.py: `nothing_else_touched`)."""

from __future__ import annotations

import pytest

from tests.acceptance.stack import RUN_PREFIX, SUITE_PREFIX, NotOurs, remove_stack


@pytest.mark.parametrize(
    "project",
    ["ai-interviewer", "", SUITE_PREFIX + "someone-elses-run-x", RUN_PREFIX, "devdb-test"],
)
def test_teardown_can_only_name_this_runs_projects(project):
    with pytest.raises(NotOurs):
        remove_stack(project, {})

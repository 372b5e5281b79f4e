"""Version numbers as Docker and Compose print them."""

from __future__ import annotations

import pytest

from devdb.edge.docker_check import version_tuple


@pytest.mark.parametrize(
    ("text", "expected"), [("20.10.24+dfsg1", (20, 10, 24)), ("v2.40.3", (2, 40, 3)), ("", ())]
)
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize("version", ["1.29.2", None])
def test_check_docker_without_compose_says_each_fix_once(monkeypatch, version):
    """The table's `fix:` line is the only place the fix is said, and never "run check-docker"."""
    import io

    from devdb.base.errors import DockerUnavailable
    from devdb.base.render import Console
    from devdb.compose import binary as compose_binary
    from devdb.edge import docker_check

    monkeypatch.setattr(compose_binary, "_plugin_binary", lambda: None)
    monkeypatch.setattr(compose_binary, "_plugin_answers", lambda: False)
    monkeypatch.setattr(compose_binary, "_standalone_version", lambda: version)
    monkeypatch.setattr(docker_check, "_run", lambda argv: (0, '{"Client": {"Version": "28.2.2"}, '
                        '"Server": {"Version": "28.2.2"}}', ""))  # fmt: skip
    compose_binary.compose_base.cache_clear()
    out = io.StringIO()
    try:
        with pytest.raises(DockerUnavailable) as caught:
            docker_check.check_docker(Console(out, io.StringIO()))
    finally:
        compose_binary.compose_base.cache_clear()
    shown = out.getvalue() + str(caught.value)
    compose_line = next(line for line in shown.splitlines() if "Docker Compose" in line)
    fix_lines = [line for line in shown.splitlines() if "fix:" in line]
    assert len(fix_lines) == 1
    assert "inv setup" in fix_lines[0]
    assert "inv setup" not in compose_line + str(caught.value)
    assert "check-docker shows" not in shown

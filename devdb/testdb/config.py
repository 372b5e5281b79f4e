"""`[tool.devdb.test]` of the backend's pyproject.toml: what builds the schema, what defines it.

[tool.devdb.test]
migrate = "alembic upgrade head"          # a shell command; none: an empty database
watch = ["alembic/**/*.py", "app/models/**/*.py"]   # globs, relative to the pyproject
pool = 16                                 # clones kept ready between runs (0: none)
migrate_timeout = 300                     # seconds before migrate is stopped
fast_logins = true                        # false: the test server keeps 4,096 SCRAM iterations
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devdb.base.errors import ConfigError

SECTION = "[tool.devdb.test]"
DEFAULT_POOL = 16
MAX_POOL = 1000
DEFAULT_MIGRATE_TIMEOUT = 600.0
KNOWN_KEYS = ("migrate", "watch", "pool", "migrate_timeout", "fast_logins")


@dataclass(frozen=True)
class TestConfig:
    """The backend's settings for its test databases (validated)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    root: Path  # the folder of the pyproject.toml: migrate runs there, globs start there
    migrate: str = ""
    watch: tuple[str, ...] = ()
    pool: int = DEFAULT_POOL
    migrate_timeout: float = DEFAULT_MIGRATE_TIMEOUT
    fast_logins: bool = True  # logins.py: a one-iteration verifier on the test server


def load(pyproject: Path) -> TestConfig:
    """Read the section from `pyproject` (absent file or section: the defaults)."""
    if not pyproject.is_file():
        return TestConfig(root=pyproject.parent)
    tomllib = _toml_reader()
    if tomllib is None:  # Python 3.10 without tomli: only a file with the section needs it
        if "devdb.test]" in pyproject.read_text(encoding="utf-8", errors="replace"):
            raise ConfigError(
                f"{SECTION} in {pyproject} cannot be read on Python 3.10 without tomli; "
                "pip install 'tomli>=1.1' (a dependency of this package there)."
            )
        return TestConfig(root=pyproject.parent)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{pyproject} cannot be read as TOML ({err}); fix the file.") from None
    section = data.get("tool", {}).get("devdb", {}).get("test")
    return parse(section or {}, pyproject)


def _toml_reader() -> Any:
    """tomllib (Python 3.11+), else tomli: its backport with the same API (Python 3.10)."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            return None
    return tomllib


def parse(section: dict, pyproject: Path) -> TestConfig:
    """The section's values, each checked; ConfigError names the key, the file and the fix."""
    where = f"{SECTION} in {pyproject}"
    unknown = sorted(set(section) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(
            f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(KNOWN_KEYS)}."
        )
    migrate = section.get("migrate", "")
    if not isinstance(migrate, str):
        raise ConfigError(
            f'{where}: migrate must be one shell command as a string, e.g. "alembic upgrade head".'
        )
    watch = section.get("watch", [])
    if isinstance(watch, str):
        watch = [watch]
    if not isinstance(watch, list) or not all(isinstance(g, str) and g for g in watch):
        raise ConfigError(f'{where}: watch must be a list of globs, e.g. ["alembic/**/*.py"].')
    if any(Path(g).is_absolute() or ".." in Path(g).parts for g in watch):
        raise ConfigError(
            f"{where}: watch globs are relative to the pyproject's folder, inside it."
        )
    pool = section.get("pool", DEFAULT_POOL)
    if not isinstance(pool, int) or isinstance(pool, bool) or not 0 <= pool <= MAX_POOL:
        raise ConfigError(
            f"{where}: pool must be a whole number from 0 to {MAX_POOL} (clones kept ready)."
        )
    timeout = section.get("migrate_timeout", DEFAULT_MIGRATE_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"{where}: migrate_timeout must be a positive number of seconds.")
    fast_logins = section.get("fast_logins", True)
    if not isinstance(fast_logins, bool):
        raise ConfigError(f"{where}: fast_logins must be true or false.")
    return TestConfig(
        root=pyproject.parent, migrate=migrate.strip(), watch=tuple(watch), pool=pool,
        migrate_timeout=float(timeout), fast_logins=fast_logins,
    )  # fmt: skip

"""What every task shares between Invoke and the package: errors to exit codes, settings, output.

`handled` turns our errors into one line and the documented exit code; `exit_when_done` skips
the interpreter's teardown after the last task; `settings` resolves them as Compose does and
shows Compose's warnings. tasks.py applies them; nothing here knows a task's own logic.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invoke import Exit

from devdb.base.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, DevDbError

if TYPE_CHECKING:
    from devdb.base.render import Console
    from devdb.compose.settings import Settings

DEBUG_VARIABLE = "DEVDB_DEBUG"


def handled(body: Callable[..., Any]) -> Callable[..., Any]:
    """Errors become one line and an exit code; Ctrl-C becomes exit 130; no tracebacks."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except Exit:
            raise
        except DevDbError as err:
            raise Exit(f"error: {err}", code=err.exit_code) from None
        except KeyboardInterrupt:
            raise Exit(
                "interrupted; the stack is left as it was (inv db-status shows it).",
                code=EXIT_INTERRUPTED,
            ) from None
        except Exception as err:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise Exit(
                f"unexpected error: {type(err).__name__}: {err} (set {DEBUG_VARIABLE}=1 for the traceback)",
                code=EXIT_UNEXPECTED,
            ) from None

    return wrapper


def exit_when_done(task_names: Callable[[], set[str]]) -> Callable[..., Any]:
    """After a successful task that was the only one asked for, end the process at once.

    With psycopg, tenacity and Invoke loaded, Python's shutdown takes about 0.1 s on a 2-core
    machine (measured: `import invoke, psycopg, tenacity` 0.52 s, 0.39 s with os._exit), which
    is over 10% of a warm `db-up`. Nothing of ours needs it: streams are flushed here, and
    connections, files and subprocesses are closed by the task before it returns.
    """

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = body(*args, **kwargs)
            asked = [arg for arg in sys.argv[1:] if arg in task_names()]
            if not os.environ.get(DEBUG_VARIABLE) and asked == [body.__name__.replace("_", "-")]:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            return result  # more tasks follow (inv db-up db-status): let Invoke run them

        return wrapper

    return decorate


def console() -> Console:
    from devdb.base.render import Console

    return Console()


def settings(out: Console | None = None) -> Settings:
    """The settings as Compose resolves them; Compose's own warnings are shown, once each."""
    from devdb.compose.settings import load_settings

    resolved = load_settings()
    for warning in resolved.warnings:
        (out or console()).note(f"warning: Compose: {warning}")
    return resolved

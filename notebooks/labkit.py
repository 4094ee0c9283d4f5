"""What every lab needs and none should spell out again.

- The project folder on Python's path, so ``import queue_system`` and
  ``import sim`` work from ``notebooks/`` (JupyterLab starts kernels there).
- ``plot_style()``: figures small enough to keep a saved lab light.
- ``exercise(...)``: the check of an exercise. An exercise not attempted yet
  (its stub raises ``NotImplementedError``), an answer that fails an
  ``assert``, or one that raises, is reported in one line that names the
  exercise, not as a traceback through this file.

Nothing of the queue lives here: the labs import it from ``queue_system``
and ``sim``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parent.parent)
            if (p / "queue_system").is_dir())
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def plot_style() -> None:
    """Light figures: 80 dpi, and room for legends outside the data."""
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "axes.grid": True,
                         "grid.alpha": 0.3, "legend.fontsize": 9})


class NotSolvedYet(AssertionError):
    """An exercise's check did not pass. Shown as one line in a notebook."""

    def _render_traceback_(self):
        # IPython calls this instead of printing a traceback: the student sees the verdict.
        return [f"\x1b[1;31m✗ {self}\x1b[0m"]


@contextlib.contextmanager
def exercise(name: str):
    """Check the exercise ``name``; on success print one line, else raise ``NotSolvedYet``.

        with exercise("1: a sort key for priorities"):
            assert sorted(tasks, key=sort_key) == expected, "high before normal"
    """
    try:
        yield
    except NotImplementedError:
        raise NotSolvedYet(f"Exercise {name} is not solved yet: replace the "
                           "`raise NotImplementedError` above with your code.") from None
    except AssertionError as failure:
        why = str(failure) or "an assert in the check failed"
        raise NotSolvedYet(f"Exercise {name} is not right yet: {why}") from None
    except Exception as error:  # the answer raised, or returned what the check cannot use
        raise NotSolvedYet(f"Exercise {name} is not right yet: running the check on your code "
                           f"raised {type(error).__name__}: {error}") from None
    print(f"✓ Exercise {name}: solved.")

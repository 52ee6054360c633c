"""The one user-facing error type.

Everything a user can fix (a bad name, a bad epsilon, missing data, a corrupt file) raises
``BenchError`` with a one-line message; the CLI turns it into exit status 2.  Any other
exception is a bug and keeps its traceback.  It lives in ``foundation``, below every other
package, because imports run one way: benchmark -> defenses -> attacks -> foundation.
"""

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """An error the user can fix; its message says how."""


class ThreatModelViolation(BenchError):
    """An adversarial example left its threat model (norm ball or the [0, 1] box)."""


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """``"did you mean 'fgsm'? "`` for the valid name closest to a typo, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(valid), n=1)
    return f"did you mean {close[0]!r}? " if close else ""

"""The one user-facing error type.

Everything a user can fix (a bad name, a bad epsilon, missing data, a corrupt file) raises
``BenchError`` with a one-line message; the CLI turns it into exit status 2.  Any other
exception is a bug and keeps its traceback.  It lives in the lowest layer (``attacks``)
because imports run one way: benchmark -> defenses -> attacks.
"""


class BenchError(Exception):
    """An error the user can fix; its message says how."""


class ThreatModelViolation(BenchError):
    """An adversarial example left its threat model (norm ball or the [0, 1] box)."""

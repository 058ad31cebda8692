"""The errors a user can cause and fix, told apart from bugs.

Every error the suite raises about its input (a suite file, a command-line value, a plug-in, a
data set, a weights file, a run folder and the records in it, the disk it writes to) derives from
:class:`UserError`. The command line prints such an error as one line saying what was expected
and how to fix it (exit status 2); any other exception is a bug, in the suite or in a plug-in,
and is reported as an internal error with its full traceback written to a file.

Each concrete error also derives from the built-in type a caller would catch for it
(``ValueError`` for a bad value, ``OSError`` for a file that cannot be written, ...), so code that
caught the built-in type before still does.
"""

from __future__ import annotations


class UserError(Exception):
    """An error in what the user gave the suite, not in the suite: shown as one line, no traceback."""


class BadValueError(UserError, ValueError):
    """A value the user gave (an option, a model argument, a stored record) is not what was expected."""

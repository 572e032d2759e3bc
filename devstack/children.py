"""How the stack starts its child processes."""

import signal
import sys


def child_options() -> dict:
    """Children get their own session, so a Ctrl-C in the terminal reaches only the
    launcher, which stops them in order (services, then broker, then PostgreSQL); and
    on Linux they are sent SIGTERM if the launcher itself dies, so none is left behind."""
    return {"start_new_session": True, "preexec_fn": _die_with_parent if sys.platform == "linux" else None}


def _die_with_parent() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

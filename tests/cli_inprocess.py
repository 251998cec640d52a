"""``python -m dlopt_core ARGS`` run in the test's own process, for CLI tests whose point is not
the command line itself.

The same ``main``, exit status, stdout and stderr, without the ~5 s of imports (torch, MLflow,
Optuna) that each fresh ``python -m dlopt_core`` pays. Each CLI test file still runs the real
command line in at least one test.
"""

from __future__ import annotations

import contextlib
import io
import subprocess


def run_main(*args: str) -> subprocess.CompletedProcess:
    """Call ``dlopt_core.cli.main(args)`` as ``python -m dlopt_core`` would; what it printed."""
    from dlopt_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as done:  # argparse: --help, or a usage error (status 2)
            if isinstance(done.code, str):  # sys.exit("message"): printed, status 1
                print(done.code, file=err)
                code = 1
            else:
                code = done.code or 0
    return subprocess.CompletedProcess(["python", "-m", "dlopt_core", *args], code, out.getvalue(), err.getvalue())

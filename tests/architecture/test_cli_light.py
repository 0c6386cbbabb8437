"""`backout --help` stays light: the CLI imports a domain only when one of its commands runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sklearn", "numpy", "kubernetes", "temporalio", "fastapi", "attribution", "activities", "workflows")


def test_help_imports_no_domain() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; import worker.cli; "
        "result = CliRunner().invoke(worker.cli.app, ['--help']); assert result.exit_code == 0, result.output; "
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_command_loads_its_domain_when_it_runs() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; import worker.cli; "
        "result = CliRunner().invoke(worker.cli.app, ['runbook', 'lint']); assert result.exit_code == 0, result.output; "
        "print('runbooks' in sys.modules, 'sklearn' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["True", "False"]

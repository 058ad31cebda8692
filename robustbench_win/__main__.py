"""``python -m robustbench_win`` runs the command line."""

from robustbench_win.cli import main

raise SystemExit(main())

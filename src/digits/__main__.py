"""``python -m digits`` runs the ``digits`` command."""

from digits.cli import main

main()

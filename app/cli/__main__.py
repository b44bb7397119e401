"""``python -m app.cli``: the ``somcal`` command without its console script."""

from app.cli import main

main()

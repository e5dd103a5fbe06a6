"""``python -m fastgw`` is the same as the ``fastgw`` command."""

from .cli import main

raise SystemExit(main())

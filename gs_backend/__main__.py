"""``python -m gs_backend`` is the same as the ``gs-backend`` command."""

from gs_backend.cli import main

raise SystemExit(main())

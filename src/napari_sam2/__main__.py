"""``python -m napari_sam2 ...`` is the ``napari-sam2`` command."""

import sys

from .cli.main import main

sys.exit(main())

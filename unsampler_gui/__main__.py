"""``python -m unsampler_gui``: start the desktop app (``unsampler-gui``)."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    from .qt.app import main as gui_main  # Qt is imported only here, never by ``unsampler_gui.core``

    return gui_main(argv)


if __name__ == "__main__":
    sys.exit(main())

"""Qt-free numerical core."""

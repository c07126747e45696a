"""Unsampler: ComfyUI's BatchUnsampler on the desktop, without ComfyUI and without model weights."""

__version__ = "0.1.0"

"""edge-ocr: on-device OCR runtime (capture → vision → recognise → publish)."""

__version__ = "0.1.0"

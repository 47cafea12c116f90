"""Measurement: ``evaluate`` (CER of models on splits and the dev set), ``accuracy``, ``speed``,
``pages`` and ``vision`` benchmarks against the peers (``peers``: Tesseract, RapidOCR)."""

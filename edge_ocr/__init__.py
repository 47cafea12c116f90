"""edge-ocr: the on-device OCR runtime. Data flows one way, and the packages follow it:

- foundation — ``config`` (one typed structure from TOML + env), ``options`` (every named choice),
  ``paths``, ``log``, ``imageio`` (decoding, bad-input errors), ``rounding``, ``labels``, ``memory``;
- ``model``       — a TFLite model and its JSON contract (``contract``, ``interpreter``);
- ``vision``      — frame → line boxes: the surface, the DB detector, the classical binariser;
- ``recognition`` — line crop → text: preprocessing, the CTC recogniser, decoders, the LM;
- ``page``        — a frame read as a typed page (``reader``, ``build``, ``result``), the line
  cache and the page diff (added/removed/changed lines);
- ``http``        — the REST API, Prometheus metrics and the web page;
- ``daemon``      — capture → gate → read → diff → delivery (outbox → MQTT, stdout, web), health;
- ``tools``       — ``watch`` (an MQTT subscriber) and ``bench``;
- ``cli``         — the ``edge-ocr`` command.

Each layer imports only those above it in this list (``tests/unit/test_layering.py``).
"""

__version__ = "0.1.0"

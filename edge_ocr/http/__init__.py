"""The HTTP side: the REST API and web page (``api``, ``web/``), Prometheus text
(``prometheus``). It sees a hosting daemon only through the small protocols in ``api``, so
``edge-ocr serve`` runs without the daemon's code."""

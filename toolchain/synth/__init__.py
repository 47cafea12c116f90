"""Synthetic data: corpora (``corpus``), Debian fonts (``fonts``), rendered lines (``render``,
``dataset``), board scenes and videos (``scenes``, ``board_video``, ``sample_video``, ``samples``)."""

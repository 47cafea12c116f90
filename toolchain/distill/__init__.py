"""Distilled students: the default DB detector (``detector``)."""

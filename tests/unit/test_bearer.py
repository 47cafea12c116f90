"""The bearer check of the device's API and the archive (edge_ocr/http/auth.py)."""

from __future__ import annotations

import pytest

from edge_ocr.http.auth import bearer_ok


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "Bearer  s3cret "])
def test_the_scheme_is_case_insensitive(header: str) -> None:
    """RFC 7235 §2.1: a client sending ``bearer`` (field report) is answered like ``Bearer``."""
    assert bearer_ok(header, "s3cret")


@pytest.mark.parametrize("header", ["", "s3cret", "Bearer", "Bearer ", "Basic s3cret", "Bearer s3cre",
                                    "Bearer s3cret2", "Bearer S3CRET", "Bearers3cret"])
def test_anything_else_is_refused(header: str) -> None:
    assert not bearer_ok(header, "s3cret")

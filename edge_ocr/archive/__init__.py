"""The archive: every version of every board, kept, grouped into lessons, searchable and exportable.

Flow (one module per step): ``subscriber`` (MQTT 5 persistent session, QoS 1, shared
subscription; a message is acknowledged only once stored) → ``ingest`` (idempotent by ``msg_id``,
ordered per device by ``seq``) → ``store`` (one interface; ``sqlite`` and ``postgres`` engines,
versioned ``migrations``) with ``lessons`` (versions grouped by timetable, inactivity or a wiped
board; erase points) and ``search`` (Chinese and English, one character and up) → ``web`` (JSON
endpoints, OpenAPI, the page) and ``export`` (Markdown, self-contained HTML). ``service`` runs it
under systemd: ``edge-ocr archive``.
"""

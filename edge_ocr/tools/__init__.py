"""Tools for people: ``watch`` (subscribe and print pages and events) and ``bench`` (frame,
line and API costs on this device)."""

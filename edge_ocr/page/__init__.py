"""A frame read as a page: ``build`` makes a reader from the configuration, ``reader`` finds,
crops and recognises the lines, ``result`` is the typed page with its one JSON shape, ``cache``
skips lines whose pixels did not change, ``diff`` turns two pages into line events."""

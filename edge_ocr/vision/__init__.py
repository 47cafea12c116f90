"""Frame → ordered line crops: find the surface, clean it, split it into lines.

Each stage is a pure function over numpy arrays so it can be tested and timed alone:
``surface`` (find and rectify the board or page), ``clean`` (flatten light, binarise,
drop ruled lines), ``lines`` (segment, deskew, order).
"""

"""Which frames deserve OCR, and what of them: a cell-based board model that reads the board
while a person stands or moves in front of it.

After He & Zhang, *Real-Time Whiteboard Capture and Processing Using a Video Camera for Remote
Collaboration* (IEEE Trans. Multimedia 9(1), 2007): the frame (a 320-px-wide grey thumbnail,
area-averaged so sensor noise mostly cancels) is cut into cells of ``CELL`` pixels; inside the
board quad each cell is, per frame,

- **foreground** (a person, an arm) when it moves (more than ``motion`` of its pixels changed
  since the last frame), or when a fifth of it is covered by a *thick* blob far darker or more
  saturated than the board, or lighter or darker than the board model (skin, clothes of any
  grey, hair, a shadow; an opening of 7 thumbnail pixels removes strokes, which are thin however
  dense or coloured, and a group of fewer than 4 such cells is a thick letter or a magnet, not a
  person) that is not on the clean board (nor, before the cell was ever clean, there since the
  gate began: the dark frame around a board is not a person); a blob only lighter or darker than
  the board model, not far darker nor coloured, is board once still for ``absorb_frames`` (a
  patch shaded in), a person never is; foreground is grown by one cell, so the edge of a sleeve
  never counts as board. A frame whose brightness over the known board differs from the model's
  by more than ``EXPOSURE`` (the camera's auto-exposure reacting to a person) is first rescaled
  to the model's;
- **clean** when it is not foreground and has been still for ``stable_frames`` frames: only then
  does it update the board model — the mean of its last two frames (half the sensor noise) is
  copied into the **composite**, the last clean state of every cell.

What is read is the composite (the live frame outside the board quad), so nothing of a person
becomes text, and a line behind a person keeps its last pixels, hence its text. The page reader
runs when the composite differs from the last one read in more than ``change`` of the board's
pixels (about one new character), or when a line held back because it touched a cell that was
not clean (:meth:`Gate.watch`) is clear again. Cells outside the quad are not modelled.

About 2.5 ms per 1080p frame with a person walking in front (``make bench``: "gate, a person
walking in front"). Frames are BGR (the daemon passes every frame through ``to_bgr8``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_ocr.config import GateConfig
from edge_ocr.vision.surface import locate_surface

THUMB_W = 320
CELL = 10  # thumbnail pixels per cell side: 60 px of a 1080p frame, about a character
PERSON_SHARE = 0.2  # share of a cell covered by a thick blob unlike the board: part of a person
BLOB_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))  # thinner than this is a stroke
TAINT_KERNEL = np.ones((5, 5), np.uint8)  # cells within 2 of a person: a strand of hair, a thin arm
DARK, SATURATED = 0.5, 60  # far darker: below half the board's grey; more saturated: 60 above it (of 255)
EXPOSURE = 0.03  # a frame brighter or darker than the board model by more than this is rescaled to it
NEAR_ALONG = 4  # cells along a line that must be settled before it is published: a word gap and more


@dataclass(frozen=True)
class GateDecision:
    recognise: bool
    reason: str  # moving | settling | unchanged | changed | first | forced | uncovered
    motion: float  # share of the board's cells moving since the previous frame
    change: float  # changed share of the board's pixels against the last read composite (-1: none yet)
    ms: float
    board: np.ndarray | None = None  # what to read (when ``recognise``): the composite, live outside the board
    occluded: float = 0.0  # share of the board's cells in front of which something stands


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """The frame area-averaged to ``THUMB_W`` pixels wide (colour kept)."""
    h, w = frame.shape[:2]
    tw = min(THUMB_W, w)
    return cv2.resize(frame, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA)


def large(cells: np.ndarray, least: int = 4) -> np.ndarray:
    """Only the groups of at least ``least`` connected cells of the boolean grid ``cells``: a
    person, an arm; not a thick letter or a magnet."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(cells.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= least
    keep[0] = False
    return keep[labels]


class Gate:
    """The board model of one camera; ``check`` every frame, ``accept`` after reading what it gave."""

    def __init__(self, cfg: GateConfig, fixed_region: np.ndarray | None = None) -> None:
        self.cfg, self.fixed_region = cfg, fixed_region
        self.reset()

    def reset(self) -> None:
        """Forget the scene (another camera source, a folder of photos)."""
        self._shape: tuple[int, ...] | None = None
        self._forced = False
        self._quad: np.ndarray | None = None
        self._watched: list[tuple[np.ndarray, tuple[str, ...]]] = []

    def _start(self, frame: np.ndarray, small: np.ndarray) -> None:
        """Cell grid for frames of this size; nothing clean yet."""
        self._shape = frame.shape
        h, w = self._thumb_shape = small.shape[:2]
        self._ys, self._xs = np.arange(0, h, CELL), np.arange(0, w, CELL)
        rows, cols = len(self._ys), len(self._xs)
        sy, sx = frame.shape[0] / h, frame.shape[1] / w
        self._frame_ys = np.round(np.append(self._ys, h) * sy).astype(int)
        self._frame_xs = np.round(np.append(self._xs, w) * sx).astype(int)
        self._area = np.add.reduceat(np.add.reduceat(np.ones((h, w), np.float32), self._ys, 0), self._xs, 1)
        self._inside = np.ones((rows, cols), bool)
        self._still = np.zeros((rows, cols), np.int32)
        self._known = np.zeros((rows, cols), bool)  # cell has a clean state in the composite
        self._doubtful = np.zeros((rows, cols), bool)  # last copied under a blob there since the start
        self._tainted = np.zeros((rows, cols), bool)  # last copied with a person within TAINT cells
        self._updated = np.zeros((rows, cols), bool)  # composite cells written since the last read
        self._moved = np.zeros((rows, cols), bool)  # something moved there since the gate began
        self._foreground = np.zeros((rows, cols), bool)
        self._blocked = np.zeros((rows, cols), bool)  # foreground grown by a cell
        self._clean_at = np.full((rows, cols), time.monotonic())
        self._previous: np.ndarray | None = None
        self._previous_frame: np.ndarray | None = None
        self._model: np.ndarray | None = None  # the composite as a grey thumbnail
        self._reference: np.ndarray | None = None  # the model when last read
        self.composite: np.ndarray | None = None
        self.background: np.ndarray | None = None  # the board's colour (BGR): the median of the first clean cells
        self._board_hs: tuple[float, float] | None = None  # the board's median grey and saturation

    def _cells(self, mask: np.ndarray) -> np.ndarray:
        """Share of each cell's pixels set in the (h, w) boolean ``mask``."""
        sums = np.add.reduceat(np.add.reduceat(mask.astype(np.float32), self._ys, 0), self._xs, 1)
        return sums / self._area

    def _pixels(self, cells: np.ndarray) -> np.ndarray:
        """The boolean cell grid ``cells`` as a thumbnail-sized pixel mask."""
        h, w = self._thumb_shape
        return np.repeat(np.repeat(cells, CELL, 0), CELL, 1)[:h, :w]

    def _frame_slice(self, r: int, c: int) -> tuple[slice, slice]:
        return (slice(self._frame_ys[r], self._frame_ys[r + 1]), slice(self._frame_xs[c], self._frame_xs[c + 1]))

    def set_region(self, quad: list[list[float]] | np.ndarray | None) -> None:
        """The board's quad (frame pixels: found on the first frame, then each page read that
        found it): cells whose centre lies inside it (or within a cell of it) are modelled; the
        rest is read live."""
        self._quad = None if quad is None else np.asarray(quad, np.float32).reshape(4, 2)
        if self._shape is None or self._quad is None:
            return
        h, w = self._shape[:2]
        sy, sx = h / (self._ys[-1] + CELL), w / (self._xs[-1] + CELL)
        cy, cx = np.meshgrid((self._ys + CELL / 2) * sy, (self._xs + CELL / 2) * sx, indexing="ij")
        poly = self._quad.reshape(-1, 1, 2)
        dist = np.array([[cv2.pointPolygonTest(poly, (float(x), float(y)), True) for x, y in zip(rx, ry)]
                         for rx, ry in zip(cx, cy)])
        self._inside = dist > -CELL * max(sx, sy)

    def check(self, frame: np.ndarray) -> GateDecision:
        """Classify the frame's cells, update the board model, and say whether to read now."""
        t0 = time.perf_counter()
        c = self.cfg
        colour = thumbnail(frame)
        small = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        if self._shape != frame.shape:
            self._start(frame, small)
            if self._quad is None:  # the board before anything is read: found on the live frame
                quad, found = locate_surface(frame, self.fixed_region)
                self._quad = quad if found or self.fixed_region is not None else None
            self.set_region(self._quad)
        gain = self._exposure(small)
        if gain != 1.0:  # the camera's auto-exposure moved: compare and keep the board at the model's
            frame, colour = (cv2.convertScaleAbs(x, alpha=1.0 / gain) for x in (frame, colour))
            small = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        if self._previous is not None:
            moving = self._cells(cv2.absdiff(small, self._previous) > c.pixel_delta) > c.motion
            self._moved |= moving
        else:
            moving = np.ones_like(self._still, bool)
        self._still = np.where(moving, 0, self._still + 1)
        unlike = self._person_pixels(colour, small)
        if self._model is not None:
            new = cv2.absdiff(small, self._model) > c.pixel_delta
            differs = self._cells(new)
            known = self._pixels(self._known)
            # Where the clean board is known, only what is not on it counts: the dark frame
            # around a board, a magnet, a drawing already read are not a person.
            unlike &= new | ~known
            # Lighter or darker than the clean board: grey or white clothes on a grey board, a
            # shadow. Thin changes (writing, erasing) do not survive the opening below.
            other = known & new
        else:
            differs, other = np.zeros(self._still.shape), np.zeros_like(unlike)
        # Strokes are thin, people are not: an opening keeps only blobs a few cells' worth thick.
        unlike, other = (self._cells(cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, BLOB_KERNEL))
                         > PERSON_SHARE for m in (unlike, other))
        # Skin and clothes stay foreground however still; a grey blob is board after absorb_frames.
        blobs = large(unlike | other)
        person = blobs & (self._known | self._moved) & (unlike | (self._still < c.absorb_frames))
        exempt = blobs & ~(self._known | self._moved)  # there since the gate began: counted as board
        self._foreground = self._inside & (moving | person)
        self._blocked = cv2.dilate(self._foreground.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        clean = self._inside & ~self._blocked & (self._still >= c.stable_frames)
        now = time.monotonic()
        self._clean_at[clean | ~self._inside] = now
        updated = clean & (~self._known | (differs > 0))
        self._update(frame, colour, small, updated)
        self._doubtful[updated] = exempt[updated]
        # A cell copied beside a person may hold a strand of hair or a thin arm the cells missed:
        # tainted, kept out of the snapshot, until it is clean with nobody near (what it holds
        # then matches the board, or it was just copied again because it did not).
        near = cv2.dilate(self._foreground.astype(np.uint8), TAINT_KERNEL).astype(bool)
        self._tainted[updated] = near[updated]
        self._tainted[clean & ~near] = False
        self._previous, self._previous_frame = small, frame
        cells = max(1, int(self._inside.sum()))
        motion = float((moving & self._inside).sum()) / cells
        occluded = float(self._foreground.sum()) / cells
        change = -1.0 if self._reference is None or self._model is None else self._board_share(
            cv2.absdiff(self._model, self._reference) > c.pixel_delta)

        def done(recognise: bool, reason: str) -> GateDecision:
            board = self.board(frame) if recognise else None
            return GateDecision(recognise, reason, motion, change, (time.perf_counter() - t0) * 1000, board, occluded)

        if self._forced:
            return done(True, "forced")
        if self._model is None:
            return done(False, "moving" if not (self._still > 0).any() else "settling")
        if self._reference is None:
            return done(True, "first")
        if change > c.change:
            return done(True, "changed")
        if any(self.state(box) in wanted for box, wanted in self._watched):
            return done(True, "uncovered")
        settling = self._inside & ~self._blocked & (self._still < c.stable_frames)
        return done(False, "moving" if motion > 0 else "settling" if settling.any() else "unchanged")

    def _exposure(self, small: np.ndarray) -> float:
        """The frame's brightness over the board model's: the median ratio over the known board
        (a person or a shadow on part of it does not move the median); 1.0 within ``EXPOSURE``."""
        if self._model is None:
            return 1.0
        now, model = self._cells(small), self._cells(self._model)  # cell means: cheap and noise-free
        board = self._known & self._inside & (model > 40)
        if board.sum() < 8:
            return 1.0
        ratio = float(np.median(now[board] / model[board]))
        return ratio if abs(ratio - 1.0) > EXPOSURE else 1.0

    def _board_share(self, mask: np.ndarray) -> float:
        """The share of the board's pixels set in the thumbnail-sized boolean ``mask``."""
        inside = self._area * self._inside
        return float((self._cells(mask) * inside).sum() / max(1.0, inside.sum()))

    def _person_pixels(self, colour: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """Pixels far darker or far more saturated than the board: its median grey and
        saturation when the composite began, or this frame's before that."""
        sat = cv2.cvtColor(colour, cv2.COLOR_BGR2HSV)[:, :, 1]
        board_grey, board_sat = self._board_hs if self._board_hs is not None else \
            (float(np.median(grey)), float(np.median(sat)))
        return (grey < DARK * board_grey) | (sat > board_sat + SATURATED)

    def _update(self, frame: np.ndarray, colour: np.ndarray, small: np.ndarray, cells: np.ndarray) -> None:
        """Copy ``cells`` of the frame (the mean of it and the previous one) into the composite;
        ``colour`` and ``small`` are its thumbnail in colour and grey."""
        if not cells.any():
            return
        if self.composite is None:
            # The board's colour: the median of the first clean cells. Cells not clean yet show
            # it until they are (a person there at the start is never painted in).
            picked = self._pixels(cells)
            bgr = self.background = np.median(colour[picked], axis=0).astype(np.uint8)
            hsv = cv2.cvtColor(bgr.reshape(1, 1, 3), cv2.COLOR_BGR2HSV)[0, 0]
            self._board_hs = (float(np.median(small[picked])), float(hsv[1]))
            self.composite = frame.copy()
            self._model = small.copy()
            for r, col in zip(*np.nonzero(self._inside & ~cells)):
                ys, xs = self._frame_slice(r, col)
                self.composite[ys, xs] = bgr
                self._model[self._ys[r]: self._ys[r] + CELL, self._xs[col]: self._xs[col] + CELL] = \
                    self._board_hs[0]
        previous = self._previous_frame if self._previous_frame is not None and \
            self._previous_frame.shape == frame.shape else frame
        for r, col in zip(*np.nonzero(cells)):
            ys, xs = self._frame_slice(r, col)
            self.composite[ys, xs] = cv2.addWeighted(previous[ys, xs], 0.5, frame[ys, xs], 0.5, 0)
            ty, tx = slice(self._ys[r], self._ys[r] + CELL), slice(self._xs[col], self._xs[col] + CELL)
            self._model[ty, tx] = small[ty, tx]
        self._known |= cells
        self._updated |= cells

    def board(self, frame: np.ndarray) -> np.ndarray:
        """What to read: the composite inside the board, the live ``frame`` outside it."""
        if self.composite is None or (self._forced and not self._known.any()):
            return frame
        return self._copy_cells(self._inside, frame.copy())

    def clean_board(self) -> np.ndarray | None:
        """The composite of the cells that have been clean, every other cell (never clean, or
        outside the board) the board's background colour: nothing that stood in front of the
        board is in it (the daemon's snapshot). Filled too: cells last copied while a thick blob
        unlike the board covered them that had been there since the gate began (the dark
        surround of a board, but also an arm held still over the first frames), grown by a cell,
        and cells last copied with a person within two cells (until clean with nobody near).
        None while no cell has been clean (a still photo read at once, a forced read before the
        board settled)."""
        if self.composite is None or self.background is None or not self._known.any():
            return None
        doubtful = cv2.dilate(self._doubtful.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        out = np.empty_like(self.composite)
        out[:] = self.background
        return self._copy_cells(self._known & ~doubtful & ~self._tainted, out)

    def _copy_cells(self, cells: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out`` with the composite's pixels copied in where the cell grid ``cells`` is set."""
        for r, row in enumerate(cells):  # one copy per run of cells in a row
            edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
            for c0, c1 in zip(edges[::2], edges[1::2]):
                ys = slice(self._frame_ys[r], self._frame_ys[r + 1])
                xs = slice(self._frame_xs[c0], self._frame_xs[c1])
                out[ys, xs] = self.composite[ys, xs]
        return out

    def accept(self) -> None:
        """What the last check gave was read: later changes are measured against it."""
        self._reference = None if self._model is None else self._model.copy()
        if self._shape is not None:
            self._updated[:] = False
        self._forced = False

    def changed_boxes(self) -> list[tuple[int, int, int, int]] | None:
        """Where the board that is read changed since the last read: frame-pixel rectangles
        (x0, y0, x1, y1) of the composite cells written since (the rest of the composite is
        the same, pixel for pixel); None when everything must be read (nothing read yet, a
        forced read)."""
        if self._shape is None or self._reference is None or self._forced:
            return None
        return [(int(self._frame_xs[c]), int(self._frame_ys[r]), int(self._frame_xs[c + 1]), int(self._frame_ys[r + 1]))
                for r, c in zip(*np.nonzero(self._updated))]

    def force(self) -> None:
        """Read at the next frame whatever it shows (the capture-now command)."""
        self._forced = True

    # -- lines against cells -------------------------------------------------------------

    def _box_cells(self, box: list[list[float]] | np.ndarray,
                   grow: tuple[int, int] = (0, 0)) -> tuple[slice, slice] | None:
        """The cells under ``box``'s bounding rectangle, grown by (rows, columns)."""
        if self._shape is None:
            return None
        pts = np.asarray(box, np.float32).reshape(-1, 2)
        sx = (self._xs[-1] + CELL) / self._shape[1] / CELL
        sy = (self._ys[-1] + CELL) / self._shape[0] / CELL
        c0, c1 = int(pts[:, 0].min() * sx) - grow[1], int(pts[:, 0].max() * sx) + 1 + grow[1]
        r0, r1 = int(pts[:, 1].min() * sy) - grow[0], int(pts[:, 1].max() * sy) + 1 + grow[0]
        return slice(max(0, r0), max(0, r1)), slice(max(0, c0), max(0, c1))

    def state(self, box: list[list[float]] | np.ndarray) -> str:
        """A line's box (frame pixels) against the cells: ``occluded`` when something stands in
        front of part of it; ``settling`` when a cell under it was uncovered or changed too
        recently; ``near`` when its own cells are clean but something stands right next to it
        (the line may go on behind) or a cell next to it (``NEAR_ALONG`` along the line: a line half
        uncovered goes on that way) is not clean yet; else ``clean``."""
        cells = self._box_cells(box)
        if cells is None or self._model is None:
            return "clean"
        if self._foreground[cells].any():
            return "occluded"
        if (self._blocked[cells] | (self._still[cells] < self.cfg.stable_frames)).any():
            return "settling"
        touching = self._box_cells(box, grow=(1, 1))
        near = self._box_cells(box, grow=(1, NEAR_ALONG))
        recent = self._inside[near] & ~self._blocked[near] & (self._still[near] < self.cfg.stable_frames)
        return "near" if self._blocked[touching].any() or recent.any() else "clean"

    def watch(self, held: list[list[list[float]]], hidden: list[list[list[float]]]) -> None:
        """Read again once a line ``held`` back (new, not clean) is clean, or one of the page's
        ``hidden`` lines (occluded or settling) has clean cells of its own again."""
        self._watched = [(np.asarray(b, np.float32), ("clean",)) for b in held]
        self._watched += [(np.asarray(b, np.float32), ("clean", "near")) for b in hidden]

    # -- health --------------------------------------------------------------------------

    def status(self) -> dict:
        """``board``: the share of board cells occluded, and per cell (rows × columns) the
        seconds since it was last clean (0 outside the board)."""
        if self._shape is None:
            return {"board": {"occluded": 0.0, "stale_s": []}}
        cells = max(1, int(self._inside.sum()))
        stale = np.where(self._inside, time.monotonic() - self._clean_at, 0.0)
        return {"board": {"occluded": round(float(self._foreground.sum()) / cells, 3),
                          "stale_s": np.round(stale, 1).tolist()}}

    def faults(self) -> dict[str, str]:
        return {}

    def metrics(self) -> list:
        board = self.status()["board"]
        stale = max((max(row) for row in board["stale_s"]), default=0.0)
        return [("board_occluded_ratio", "gauge", "share of the board's cells with something in front",
                 board["occluded"]),
                ("board_stale_max_seconds", "gauge", "seconds since the least recently clean board cell was clean",
                 stale)]

"""Command line: ``recognize`` images, ``run`` the daemon, ``watch`` its messages, check a ``config``,
``archive`` what devices publish."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edge_ocr import __version__, options, rounding
from edge_ocr.config import Config, ConfigError, summary
from edge_ocr.config import load as load_config
from edge_ocr.imageio import ImageError, configure, read_pages
from edge_ocr.model.contract import ContractError
from edge_ocr.model.interpreter import RuntimeMissingError
from edge_ocr.page.build import build_reader
from edge_ocr.page.reader import is_page
from edge_ocr.page.result import NO_TEXT, PageLine, found_fields
from edge_ocr.paths import DEFAULT_MODEL


def _write_debug(directory: Path, source: Path, pictures: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, picture in pictures.items():
        cv2.imwrite(str(directory / f"{source.stem}.{name}.png"), picture)


def _recognize(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return 2
    r, v = cfg.recognizer, cfg.vision
    for section, key, value in ((r, "model", args.model), (r, "threads", args.threads), (r, "runtime", args.runtime),
                                (r, "decoder", args.decoder), (r, "beam_width", args.beam_width),
                                (r, "lm", args.lm), (r, "lm_weight", args.lm_weight),
                                (v, "detector", args.detector), (v, "binarizer", args.binarizer)):
        if value is not None:
            setattr(section, key, str(value) if isinstance(value, Path) else value)
    if args.no_xnnpack:
        r.xnnpack = False
    try:
        cfg.validate()
        reader = build_reader(cfg)
    except ConfigError as exc:
        print(f"edge-ocr: configuration error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ContractError, RuntimeMissingError, ValueError) as exc:
        print(f"edge-ocr: cannot load model: {exc}", file=sys.stderr)
        return 2
    rec = reader.recognizer
    failed = 0
    rows = []
    for path in args.images:
        try:
            images = read_pages(path)  # every page of a multi-page TIFF, each read and reported as its own
        except ImageError as exc:
            print(f"edge-ocr: {exc}", file=sys.stderr)
            rows.append({"file": str(path), "error": str(exc)})
            failed += 1
            continue
        for number, image in enumerate(images, 1):
            several = len(images) > 1
            label, page_no = (f"{path} [page {number}/{len(images)}]", {"page": number}) if several else (path, {})
            if is_page(image, args.mode, reader.detector):
                debug: dict | None = {} if args.debug_dir else None
                reader.reset()  # each image is read on its own
                try:
                    page = reader.read(image, debug)
                except ValueError as exc:
                    print(f"edge-ocr: {label}: {exc}", file=sys.stderr)
                    rows.append({"file": str(path), **page_no, "error": str(exc)})
                    failed += 1
                    continue
                if debug is not None:
                    _write_debug(args.debug_dir, path.with_stem(f"{path.stem}.p{number}") if several else path, debug)
                rows.append({"file": str(path), **page_no, "mode": "page", **page.to_dict()})
                if not args.json:
                    turned = f", read turned by {page.rotation}°" if page.rotation else ""
                    if page.blurred:
                        turned += f", BLURRED (sharpness {page.sharpness:.2f}): text unreliable, confidences capped"
                    if not page.text_found:
                        turned += f", {NO_TEXT}"
                    n = len(page.lines)
                    print(f"== {label}: {n} line{'' if n == 1 else 's'}, {page.timings_ms['total']:.0f} ms{turned}")
                    for ln in page.lines:
                        print(f"{ln.block}\t{ln.confidence:.3f}\t{ln.text}")
                continue
            result = rec.recognize([image])[0]
            line = PageLine.whole(image, result.text, result.confidence, result.char_confidences)
            rows.append({"file": str(path), **page_no, "mode": "line", **line.to_dict(), "ms": rounding.ms(result.ms),
                         **found_fields([line.to_dict()])})
            if not args.json:
                print(f"{label}\t{result.confidence:.3f}\t{result.text or NO_TEXT}")
    if args.json:
        doc = {"model": rec.contract.id, "detector": reader.detector.contract.id if reader.detector else "classical",
               "runtime": rec.runtime, "decoder": r.decoder, "lines": rows}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 1 if failed else 0


def _load_config(path: Path | None) -> Config | None:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        print(f"edge-ocr: configuration error: {exc}", file=sys.stderr)
        return None
    configure(cfg.image)  # the image limits of every command: recognize, serve, run
    return cfg


def _long_running(path: Path | None) -> Config | None:
    """The configuration of a command that stays up (``run``, ``serve``): loaded, its log level
    set, and glibc told to give large freed buffers back (a Pi's memory)."""
    from edge_ocr.log import setup
    from edge_ocr.memory import return_large_buffers

    cfg = _load_config(path)
    if cfg is not None:
        setup(cfg.service.log_level)
        return_large_buffers()
    return cfg


def _run(args: argparse.Namespace) -> int:
    from edge_ocr.daemon.outbox import OutboxError
    from edge_ocr.daemon.service import Service
    from edge_ocr.log import Log

    cfg = _long_running(args.config)
    if cfg is None:
        return 2
    try:
        service = Service(cfg, args.config)
    except (FileNotFoundError, ContractError, RuntimeMissingError, OutboxError, ValueError) as exc:
        Log("edge_ocr.daemon.service").error("start_failed", error=str(exc))
        print(f"edge-ocr: cannot start: {exc}", file=sys.stderr)
        return 2
    service.install_signals()
    return service.run()


def _archive(args: argparse.Namespace) -> int:
    from edge_ocr.archive.service import ArchiveService
    from edge_ocr.archive.store import StoreError
    from edge_ocr.log import Log

    cfg = _long_running(args.config)
    if cfg is None:
        return 2
    try:
        service = ArchiveService(cfg)
    except (StoreError, ConfigError) as exc:
        Log("edge_ocr.archive.service").error("start_failed", error=str(exc))
        print(f"edge-ocr archive: cannot start: {exc}", file=sys.stderr)
        return 2
    service.install_signals()
    return service.run()


def _config(args: argparse.Namespace) -> int:
    cfg = _load_config(args.config)
    if cfg is None:
        return 2
    print(json.dumps(summary(cfg), indent=2, ensure_ascii=False))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from edge_ocr.http.api import build_api

    cfg = _long_running(args.config)
    if cfg is None:
        return 2
    for key in ("host", "port", "token", "allow_open"):
        if getattr(args, key) is not None:
            setattr(cfg.http, key, getattr(args, key))
    try:
        cfg.http.validate()  # the flags too, before a model is loaded: an open bind is refused here
    except ConfigError as exc:
        print(f"edge-ocr: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        reader = build_reader(cfg)
    except (FileNotFoundError, ContractError, RuntimeMissingError, ValueError) as exc:
        print(f"edge-ocr: cannot load model: {exc}", file=sys.stderr)
        return 2
    try:
        build_api(cfg.http, reader).serve()
    except (OSError, ValueError) as exc:  # ValueError: waitress cannot resolve the host
        print(f"edge-ocr: cannot listen on {cfg.http.host}:{cfg.http.port}: {getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _bench(args: argparse.Namespace) -> int:
    from edge_ocr.tools.bench import emit, report, run

    result = run(quick=args.quick)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
    emit(report(result), args.report)
    return 0


WATCH_FLAGS = ("host", "port", "base_topic", "username", "tls", "ca_file", "cert_file", "key_file")


def _watch(args: argparse.Namespace) -> int:
    from edge_ocr.tools.watch import watch

    cfg = _load_config(args.config)
    if cfg is None:
        return 2
    flags = {k: getattr(args, k) for k in WATCH_FLAGS if getattr(args, k) is not None}
    mqtt = dataclasses.replace(cfg.mqtt, **flags)
    try:
        mqtt.validate()
    except ConfigError as exc:
        print(f"edge-ocr watch: {exc}", file=sys.stderr)
        return 2
    return watch(mqtt, args.device, args.json, args.seconds)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge-ocr", description="On-device OCR for boards and notebooks.")
    ap.add_argument("--version", action="version", version=f"edge-ocr {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recognize", help="recognise line images or whole frames (board, page)")
    rec.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    rec.add_argument("--mode", choices=options.MODES, default="auto",
                     help="line: the image is one text line; page: find the surface and split lines")
    rec.add_argument("--debug-dir", type=Path, default=None,
                     help="page mode: write the rectified surface and line-box pictures (classical: also "
                          "the flattened and binarised surface)")
    rec.add_argument("--config", type=Path, default=None,
                     help="TOML file: its [vision] and [recognizer] sections (the flags below override them)")
    rec.add_argument("--detector", choices=options.DETECTORS, default=None,
                     help="db: the learned text detector (default); classical: binarise and smear")
    rec.add_argument("--binarizer", choices=options.BINARIZERS, default=None, help="classical detector only")
    rec.add_argument("--model", type=Path, default=None,
                     help=f"a .tflite with its .json contract beside it (default {DEFAULT_MODEL.name})")
    rec.add_argument("--json", action="store_true", help="print one JSON document for machines")
    rec.add_argument("--decoder", choices=options.DECODERS, default=None)
    rec.add_argument("--beam-width", type=int, default=None)
    rec.add_argument("--lm", type=Path, default=None, help="character bigram LM (.npz) used by --decoder beam")
    rec.add_argument("--lm-weight", type=float, default=None)
    rec.add_argument("--threads", type=int, default=None)
    rec.add_argument("--runtime", choices=options.RUNTIMES, default=None)
    rec.add_argument("--no-xnnpack", action="store_true",
                     help="builtin int8 kernels for every model (recogniser and detector): slower, bit-exact "
                          "across runtimes (also EDGE_OCR_XNNPACK=0, recognizer.xnnpack = false)")
    rec.set_defaults(func=_recognize)
    run = sub.add_parser("run", help="the daemon: camera frames in, text out over MQTT")
    run.add_argument("--config", type=Path, default=None, help="TOML file (default: built-in defaults + env)")
    run.set_defaults(func=_run)
    arc = sub.add_parser("archive", help="keep every board version from the broker: lessons, search, export",
                         description="Subscribes to what the devices publish ([mqtt] broker, [archive] settings; "
                                     "docs/archive.md) and serves the archive's page and JSON API.")
    arc.add_argument("--config", type=Path, default=None, help="TOML file: [mqtt], [service] and [archive]")
    arc.set_defaults(func=_archive)
    cfg = sub.add_parser("config", help="validate a configuration and print it (secrets masked)")
    cfg.add_argument("--config", type=Path, default=None)
    cfg.set_defaults(func=_config)
    srv = sub.add_parser("serve", help="the REST API and web page on their own (no camera, no MQTT)")
    srv.add_argument("--config", type=Path, default=None, help="TOML file: [http] and [recognizer] sections")
    srv.add_argument("--host", default=None, help="default 127.0.0.1 (http.host)")
    srv.add_argument("--port", type=int, default=None, help="default 8080 (http.port)")
    srv.add_argument("--token", default=None, help="bearer token (better: EDGE_OCR_HTTP_TOKEN); required "
                     "when --host is not a loopback address, unless --allow-open")
    srv.add_argument("--allow-open", action="store_true", default=None,
                     help="serve a non-loopback host without a token: anyone on the network may use the API "
                          "(http.allow_open)")
    srv.set_defaults(func=_serve)
    b = sub.add_parser("bench", help="measure frame and API costs on this device (Markdown report)")
    b.add_argument("--quick", action="store_true", help="few repeats: a smoke run, not figures to quote")
    b.add_argument("--report", type=Path, default=None, help="also write the Markdown report here")
    b.add_argument("--json", type=Path, default=None, help="also write the raw figures as JSON")
    b.set_defaults(func=_bench)
    w = sub.add_parser("watch", help="subscribe and print pages and line events as they arrive",
                       description="Connects as the daemon does: the [mqtt] section of --config and the "
                                   "EDGE_OCR_MQTT_* variables, then these flags.")
    w.add_argument("--config", type=Path, default=None, help="TOML file: its [mqtt] section (broker, TLS, user)")
    w.add_argument("--host", default=None, help="default localhost (mqtt.host)")
    w.add_argument("--port", type=int, default=None, help="default 1883 (mqtt.port)")
    w.add_argument("--base-topic", default=None, help="default edge-ocr (mqtt.base_topic)")
    w.add_argument("--device", default="+", help="device id (default: every device)")
    w.add_argument("--username", default=None, help="password from EDGE_OCR_MQTT_PASSWORD")
    w.add_argument("--tls", action="store_true", default=None, help="TLS, server certificate verified")
    w.add_argument("--ca-file", default=None, help="CA certificate(s) that signed the broker's (PEM)")
    w.add_argument("--cert-file", default=None, help="client certificate (PEM), with --key-file")
    w.add_argument("--key-file", default=None, help="client key (PEM)")
    w.add_argument("--json", action="store_true", help="raw messages as JSON lines")
    w.add_argument("--seconds", type=float, default=None, help="stop after this long")
    w.set_defaults(func=_watch)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

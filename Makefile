# edge-ocr — the two commands: `make run` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
CVENV := .venv-toolchain
PY := $(VENV)/bin/python
CPY := $(CVENV)/bin/python
APT_CONVERT := fonts-noto-cjk fonts-wqy-zenhei fonts-wqy-microhei fonts-arphic-uming fonts-arphic-ukai \
	fonts-arphic-gbsn00lp fonts-arphic-gkai00mp fonts-lxgw-wenkai fonts-klee fonts-dkg-handwriting \
	fonts-humor-sans fonts-breip fonts-femkeklaver fonts-kristi fonts-rufscript fonts-comic-neue \
	fonts-dejavu-core fonts-liberation2 fonts-smiley-sans fortunes-zh fortunes fortunes-min wamerican

.PHONY: replay fresh-check test-torch test-unit test-system student student-pack student-joint student-joint-export finetune import-ppocr import-det distill-det bench-pages bench-scale bench-scale-cv run deps-runtime deps-test install uninstall arm64-check soak bench bench-accuracy test test-runtime test-toolchain lint model data train export evaluate samples lm lm-tune bench bench-vision bench-archive bench-daemon clean

# Install the Debian packages in $(1) that are missing, when root (idempotent, quiet when done);
# when not root and some are missing, stop and name them: a test or `make run` would fail later.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "apt: installing" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages: run as root, or: sudo apt install" $$missing; exit 1; fi; \
	fi
endef

$(VENV)/.done: requirements/runtime.txt requirements/dev.txt pyproject.toml
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || { echo "$(PYTHON) lacks venv/ensurepip: apt install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(CVENV)/.done: requirements/toolchain.txt requirements/runtime.txt
	$(call apt_install,$(APT_CONVERT))
	$(PYTHON) -m venv $(CVENV)
	$(CPY) -m pip install -q --upgrade pip
	$(CPY) -m pip install -q -r requirements/toolchain.txt
	$(CPY) -m pip install -q --no-deps tf_keras==2.21.0 handright==8.2.0
	touch $@

run: $(VENV)/.done deps-runtime
	@scripts/run.sh

# The daemon's broker for `make run`. Installed when root and missing.
deps-runtime:
	$(call apt_install,mosquitto mosquitto-clients)

# On the device, as root: code, model and venv under PREFIX, config in /etc/edge-ocr (kept if
# present), the systemd unit installed and enabled. DESTDIR=… stages it all under another root.
PREFIX ?= /opt/edge-ocr
install:
	@PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) PYTHON=$(PYTHON) scripts/install.sh install

uninstall:
	@PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) scripts/install.sh uninstall

# Not part of `make test` (about an hour, as root): the README's `make run` and `make test` in a
# Debian 12 amd64 root made from nothing; logs in build/fresh-root/logs (scripts/fresh_root_check.sh).
fresh-check:
	$(call apt_install,mmdebstrap git)
	scripts/fresh_root_check.sh

# Not part of `make test` (minutes): edge-ocr in an emulated arm64 Debian, compared with x86.
arm64-check: $(VENV)/.done
	$(call apt_install,mmdebstrap qemu-user-static)
	SUITE=bookworm scripts/arm64_check.sh
	SUITE=trixie scripts/arm64_check.sh

# Minutes of the daemon on the looping sample video against mosquitto, the broker killed now
# and then: messages produced/delivered/lost/duplicated, RSS, fds, threads (reports/soak.md).
MINUTES ?= 30
soak: $(VENV)/.done deps-runtime
	$(PY) -m tests.soak --minutes $(MINUTES) --report reports/soak.md

# Everything the tests run or read besides Python: mosquitto (and mosquitto_passwd), openssl
# (TLS certificates), a headless Chromium (the web page), systemd-analyze (the unit), make
# (a staged `make install`), and fonts (unit and system tests render their pages: printed Latin
# and Chinese, vertical columns). `make fresh-check` proves the list on a new machine.
APT_TEST := mosquitto openssl chromium systemd make fonts-dejavu-core fonts-wqy-microhei postgresql
deps-test:
	$(call apt_install,$(APT_TEST))

# pytest exit 5 means "no tests collected": that is a failure here, not a pass. -rfEs names each
# failure, error and skip with its reason at the end (a skip is a tool or a file not there).
define pytest
	@$(1) -m pytest -rfEs $(2); rc=$$?; if [ $$rc = 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc
endef

test: test-runtime test-toolchain lint

# tests/unit: fast, in-process; tests/system: a real mosquitto, real daemons, browsers, systemd files.
test-runtime: test-unit test-system

test-unit: $(VENV)/.done deps-test
	$(call pytest,$(PY),tests/unit)

test-system: $(VENV)/.done deps-test
	$(call pytest,$(PY),tests/system)

test-toolchain: $(CVENV)/.done $(CVENV)/.import $(CVENV)/.teacher
	$(call pytest,$(CPY),tests/toolchain -m "not torch")

# The PyTorch parts of the GPU training route (parity with ONNX Runtime and the Keras head), with
# the CPU wheel student-joint installs; not in make test, whose machines have no torch.
test-torch: build/torchsite/.done $(CVENV)/.import $(CVENV)/.teacher
	$(call pytest,$(TORCH_PY),tests/toolchain -m torch)

lint: $(VENV)/.done
	$(VENV)/bin/ruff check edge_ocr toolchain tests firmware_config

# ---- host toolchain: re-create the shipped model (hours on 2 CPU cores; see models/MODEL_CARD.md)
STEPS ?= 3000
TRAIN_LINES ?= 120000
data: $(CVENV)/.done
	$(CPY) -m toolchain.synth.dataset --split test --count 3000 --out data/test
	$(CPY) -m toolchain.synth.dataset --split val --count 2000 --out data/val
	$(CPY) -m toolchain.synth.dataset --split train --count $(TRAIN_LINES) --out data/train

train: $(CVENV)/.done
	LD_PRELOAD=$$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -1) $(CPY) -m toolchain.crnn.train --data data --run runs/crnn --steps $(STEPS)

export: $(CVENV)/.done
	$(CPY) -m toolchain.crnn.export --run runs/crnn --out models --name crnn_zh_en
	cp runs/crnn/final.weights.h5 models/crnn_zh_en_float.weights.h5
	cp runs/crnn/config.json models/crnn_zh_en_float.config.json

DEVSET ?= ../shared/devset
evaluate: $(CVENV)/.done
	$(CPY) -m toolchain.bench.evaluate --split data/test --keras-run runs/crnn --store \
	  $(if $(wildcard $(DEVSET)/labels.tsv),--devset $(DEVSET)) \
	  --models models/crnn_zh_en_float.tflite models/crnn_zh_en_int8.tflite --report models/crnn_zh_en.eval.md

model: data train export evaluate

# The float TFLite from the committed float weights (for benchmarks and evaluation; not shipped).
models/crnn_zh_en_float.tflite: models/crnn_zh_en_float.weights.h5 | $(CVENV)/.done
	$(CPY) -m toolchain.crnn.export --float-only --weights models/crnn_zh_en_float.weights.h5 \
	  --config models/crnn_zh_en_float.config.json --out models --name crnn_zh_en

lm: $(CVENV)/.done
	$(CPY) -m toolchain.crnn.lm --out models/lm_zh_en.npz

lm-tune: $(CVENV)/.done
	$(CPY) -m toolchain.crnn.lm_tune --report models/lm_zh_en.tune.md $(if $(wildcard $(DEVSET)/labels.tsv),--devset $(DEVSET))

# Speed, memory and start-up with the peers (Tesseract, PP-OCRv4/v6 via ONNX Runtime) on the
# same lines: reports/bench.md + .png + .json. The peers live in the toolchain's environment.
bench: $(CVENV)/.peers models/crnn_zh_en_float.tflite
	$(CPY) -m toolchain.bench.speed --out reports/bench

# Our model against Tesseract and PP-OCRv4/v6 on the same line crops: the dev set's real lines
# (when DEVSET exists) and 500 held-out synthetic lines (when rendered): reports/accuracy.md/.png
bench-accuracy: $(CVENV)/.peers models/crnn_zh_en_float.tflite build/ppocr/ppocrv6_small_float.tflite
	$(CPY) -m toolchain.bench.accuracy --split data/test --out reports/accuracy \
	  $(if $(wildcard $(DEVSET)/labels.tsv),--devset $(DEVSET))

$(CVENV)/.peers: requirements/bench.txt | $(CVENV)/.done
	$(call apt_install,tesseract-ocr tesseract-ocr-chi-sim)
	$(CPY) -m pip install -q -r requirements/bench.txt
	$(CPY) -m pip install -q --no-deps rapidocr_onnxruntime==1.4.4 rapidocr==3.10.0
	touch $@

# The default model: PP-OCRv6 small recognition (in the rapidocr wheel, Apache-2.0) imported to
# int8 TFLite by toolchain/onnx_import/recognizer.py, and its float-vs-int8 parity report. The float model
# (21 MB) goes to build/, not into the repository.
import-ppocr: $(CVENV)/.peers $(CVENV)/.import
	$(CPY) -m toolchain.onnx_import.recognizer --onnx ppocrv6 --name ppocrv6_small --keep zh_en --out models --float-out build/ppocr
	$(CPY) -m toolchain.bench.evaluate --split data/test --limit 1000 --store \
	  $(if $(wildcard $(DEVSET)/labels.tsv),--devset $(DEVSET)) \
	  --models build/ppocr/ppocrv6_small_float.tflite models/ppocrv6_small_int8.tflite --report models/ppocrv6_small.eval.md

build/ppocr/ppocrv6_small_float.tflite: | $(CVENV)/.peers $(CVENV)/.import
	$(CPY) -m toolchain.onnx_import.recognizer --onnx ppocrv6 --name ppocrv6_small --keep zh_en --out build/ppocr --float-out build/ppocr

# The default text detector: PP-OCRv4 mobile det (in the rapidocr_onnxruntime wheel, Apache-2.0)
# imported by toolchain/onnx_import/detector.py (int8 weights, 1.4 MB); its float model and the PP-OCRv6 small
# det (for comparison in bench-pages) go to build/.
import-det: $(CVENV)/.peers $(CVENV)/.import
	$(CPY) -m toolchain.onnx_import.detector --onnx ppocrv4_det --name ppocrv4_det --out models --float-out build/ppocr
	$(CPY) -m toolchain.onnx_import.detector --onnx ppocrv6_det --name ppocrv6_det --out build/ppocr

# The default detector (half the teacher's multiply-adds): PP-OCRv4 mobile det's backbone under a new neck
# and head distilled from the whole teacher on the unlabelled real photos and rendered train-split
# boards (about 40 minutes on 2 cores; resumable). The dev set only judges it: make bench-pages.
DISTILL_EPOCHS ?= 16
distill-det: $(CVENV)/.peers $(CVENV)/.import
	$(CPY) -m toolchain.distill.detector cache --out build/det_distill
	$(CPY) -m toolchain.distill.detector train --out build/det_distill --epochs $(DISTILL_EPOCHS)
	$(CPY) -m toolchain.distill.detector export --out build/det_distill --models models

# The CRNN student (about an hour on 2 cores): PP-OCRv6 small's convolutional backbone (frozen),
# neck convolutions and classifier with their weights, and a BiLSTM in place of its attention,
# distilled from the whole teacher on rendered train-split lines and the real line crops of
# ../shared/unlabelled; full-integer int8. Every step resumes where it stopped (cache chunks,
# checkpoints). The dev set only judges it: make bench-accuracy.
STUDENT_STEPS ?= 4000
student: $(CVENV)/.import $(CVENV)/.teacher data/test/labels.txt
	$(CPY) -m toolchain.crnn.student cache --out build/rec_distill
	$(CPY) -m toolchain.crnn.student train --out build/rec_distill --steps $(STUDENT_STEPS)
	$(CPY) -m toolchain.crnn.student export --out build/rec_distill --models models
	cp build/rec_distill/curve.png models/crnn_student_zh_en.curve.png
	$(CPY) -m toolchain.bench.evaluate --split data/test --limit 1000 --runtimes litert --store \
	  $(if $(wildcard $(DEVSET)/labels.tsv),--devset $(DEVSET)) \
	  --models build/rec_distill/crnn_student_zh_en_float.tflite models/crnn_student_zh_en_int8.tflite \
	  --report models/crnn_student_zh_en.eval.md

# Fine-tune the student on your own lines: DATA is a folder of line images + labels.tsv
# (file<TAB>text). A tenth is held out to report before/after; the model lands in build/finetune/.
ifneq ($(filter finetune,$(MAKECMDGOALS)),)
ifndef DATA
$(error usage: make finetune DATA=folder (line images + labels.tsv: file<TAB>text))
endif
endif
finetune: $(CVENV)/.import $(CVENV)/.teacher
	$(CPY) -m toolchain.crnn.finetune --data $(DATA) --out build/finetune

# The student with its backbone learning too, quantisation-aware (toolchain/crnn/joint.py,
# docs/models.md): student-pack renders lines and runs the teacher here (about 20 minutes on 2 cores),
# student-joint trains in PyTorch (6.5 minutes on one H200; on CPUs it runs too, slowly, and resumes
# from build/joint/run/last.npz), student-joint-export makes the int8 model in build/joint/models and
# scores it on the dev lines by halves. It replaces models/ only by hand, once it wins there.
JOINT_MINUTES ?= 6.5
JOINT_WEIGHTS ?= build/joint/run/last.npz
TORCH_PY := PYTHONPATH=build/torchsite $(CPY)
student-pack: $(CVENV)/.import $(CVENV)/.teacher
	$(CPY) -m toolchain.crnn.joint pack --out build/joint
build/torchsite/.done: | $(CVENV)/.done
	$(CPY) -m pip install -q --target build/torchsite torch==2.13.0
	touch $@
student-joint: build/torchsite/.done
	$(TORCH_PY) -m toolchain.crnn.joint train --pack build/joint/pack --out build/joint/run \
	  --minutes $(JOINT_MINUTES) --seed 1
student-joint-export: $(CVENV)/.import $(CVENV)/.teacher
	$(CPY) -m toolchain.crnn.joint export --weights $(JOINT_WEIGHTS) --float --out build/joint/export \
	  --models build/joint/models
	$(CPY) -m toolchain.crnn.joint compare --compare build/joint/models/crnn_student_zh_en_int8.tflite \
	  build/joint/export/crnn_student_zh_en_float.tflite models/crnn_student_zh_en_int8.tflite \
	  models/ppocrv6_small_int8.tflite

# The held-out synthetic test split alone (make data renders it with the training split).
data/test/labels.txt: | $(CVENV)/.done
	$(CPY) -m toolchain.synth.dataset --split test --count 3000 --out data/test

# The teacher of the student and of fine-tuning (PP-OCRv6 small rec, inside the rapidocr wheel).
$(CVENV)/.teacher: | $(CVENV)/.done
	$(CPY) -m pip install -q --no-deps rapidocr==3.10.0
	touch $@

build/ppocr/ppocrv4_det_float.tflite: | $(CVENV)/.peers $(CVENV)/.import
	$(CPY) -m toolchain.onnx_import.detector --onnx ppocrv4_det --name ppocrv4_det --out build/ppocr --float-out build/ppocr

# Every real page of the dev set: edge-ocr (each detector) against RapidOCR PP-OCRv4/v6 det+rec and
# Tesseract in one run: reports/pages.md + .png, a contact sheet per page in reports/pages/.
bench-pages: $(CVENV)/.peers build/ppocr/ppocrv4_det_float.tflite
	@test -f $(DEVSET)/labels.tsv || { echo "bench-pages needs the dev set at DEVSET=$(DEVSET)"; exit 1; }
	$(CPY) -m toolchain.bench.pages --devset $(DEVSET) --out reports/pages

# Lectures of ../shared/classroom replayed through the real daemon and mosquitto, a person passing:
# every event judged against the frames (tests/replay.py). LECTURE= one or more; empty: every
# measuring lecture. About a minute per lecture.
LECTURE ?=
replay: $(VENV)/.done deps-test
	$(PY) -m tests.replay $(LECTURE)

# The same lines from 10 to 160 px cap height in a 1920x1080 frame: scale-aware detection against
# one coarse pass, recall and CER per height (reports/scale.md). About a minute.
bench-scale: $(CVENV)/.done
	$(CPY) -m toolchain.bench.scale --out reports/scale.md

# The scale-aware detector's settings chosen by cross-validation: dev pages split by source,
# classroom frames by lecture; choose on one half, report the other (reports/scale_cv.md, ~15 min).
bench-scale-cv: $(CVENV)/.done
	@test -f $(DEVSET)/labels.tsv || { echo "bench-scale-cv needs the dev set at DEVSET=$(DEVSET)"; exit 1; }
	$(CPY) -m toolchain.bench.scale_cv --devset $(DEVSET) --out reports/scale_cv.md

$(CVENV)/.import: requirements/import.txt | $(CVENV)/.done
	$(CPY) -m pip install -q -r requirements/import.txt
	$(CPY) -m pip install -q --no-deps onnx2tf==1.29.24
	touch $@

bench-vision: $(CVENV)/.done
	$(CPY) -m toolchain.bench.vision --count 100 --report reports/vision.md

# What one change on a board costs the daemon (15 and 40 lines, 1080p, 1 thread) against a full
# re-read in the same run; needs the dev set (docs/daemon.md, "Cost per change").
bench-daemon: $(CVENV)/.done
	$(CPY) -m toolchain.bench.daemon --repeats 3

# The archive at school scale (docs/archive.md): 300 devices through mosquitto into `edge-ocr
# archive` on SQLite and PostgreSQL, then search over 1 million lines. About 10 minutes.
bench-archive: $(VENV)/.done deps-test
	$(PY) -m toolchain.bench.archive --report reports/archive.md

samples: $(CVENV)/.done
	$(CPY) -m toolchain.synth.samples --out samples/lines

clean:
	rm -rf $(VENV) $(CVENV) .pytest_cache .ruff_cache

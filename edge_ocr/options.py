"""Every choice a user can name (configuration keys, CLI flags, API parameters) defined once, so
the configuration's check, the CLI's ``choices`` and the code that acts on them cannot drift."""

DETECTORS = ("db", "classical")  # [vision] detector: the learned DB detector, or binarise and smear
BINARIZERS = ("sauvola", "adaptive")  # [vision] binarizer (classical detector)
RUNTIMES = ("auto", "litert", "tflite")  # [recognizer] runtime: ai-edge-litert, tflite-runtime
DECODERS = ("greedy", "beam")  # [recognizer] decoder: CTC best path, or prefix beam search (+ LM)
MODES = ("auto", "line", "page")  # what an image is: one text line, or a frame to find lines in
MQTT_PROTOCOLS = ("auto", "5", "3.1.1")  # [mqtt] protocol: auto tries 5, falls back to 3.1.1

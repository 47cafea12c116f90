"""The host toolchain (TensorFlow lives here, never in ``edge_ocr``), by job:

- ``synth``       — corpora, fonts, rendered lines, scenes and board videos;
- ``crnn``        — our CRNNs: the first one (``model``, ``train``, ``export``), the student
  distilled from PP-OCRv6 (``student``), fine-tuning on a user's lines, the character LM;
- ``onnx_import`` — PP-OCR recognisers and detectors from ONNX to int8 TFLite, and the rebuild
  of an ONNX backbone as Keras layers;
- ``distill``     — the default detector, distilled from PP-OCRv4's;
- ``bench``       — evaluation and benchmarks against peers;
- ``scoring`` (CER, page CER on rapidfuzz) and ``common`` (what the commands share).
"""

"""PP-OCR models from ONNX: recognisers (``recognizer``) and DB detectors (``detector``) to
TFLite int8 with contract and audit; ``keras_rebuild`` turns an ONNX backbone into Keras layers."""

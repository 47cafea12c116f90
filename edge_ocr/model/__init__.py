"""A TFLite model and its JSON contract: what the recogniser and the detector both load (input
shape, normalisation, charset or DB post-processing), on ai-edge-litert or tflite-runtime."""

"""Host toolchain: synthetic lines, the CRNN, training, evaluation and int8 export."""

"""A line crop → text: normalisation to the model's height (``preprocess``), the model's input
tensor, the CTC recogniser (``recognizer``), greedy and beam decoding (``ctc``) with an optional
character bigram LM (``lm``)."""

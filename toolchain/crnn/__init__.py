"""Our CRNNs (CNN + BiLSTM + CTC): the first one trained from nothing (``model``, ``train``,
``export``), the student on PP-OCRv6's backbone (``student``), ``finetune`` on a user's lines, and the
character bigram LM (``lm``, ``lm_tune``)."""

"""Our CRNNs (CNN + BiLSTM + CTC): the first one trained from nothing (``model``, ``train``,
``export``), the student on PP-OCRv6's backbone (``student``; ``joint``: its backbone trained too, in
PyTorch on a GPU), ``finetune`` on a user's lines (``writers``: measured on one writer's other pages),
and the character bigram LM (``lm``, ``lm_tune``)."""

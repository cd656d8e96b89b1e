"""The surrogate: a causal TCN-LSTM per cell type, its training and evaluation.

``model``     the network, full-sequence forward and streaming ``init_state``/``step``
``data``      tensors and normalisation from a merged cell dataset
``train``     seeded, resumable training with early stopping
``checkpoint`` save/load: rebuilds the model from the file alone
``evaluate``  held-out free-running fidelity metrics
"""

"""Monitoring: what production traffic looks like compared with what the model learnt from."""

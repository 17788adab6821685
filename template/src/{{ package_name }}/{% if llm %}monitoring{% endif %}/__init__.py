"""Monitoring of LLM traffic: text statistics of each chat (text_stats) and the drift job that
compares the served traffic with the training conversations (text_drift)."""

"""Serving the fine-tuned model over OpenAI's chat API: llm_app (the server), generation (the
model and its worker), llm_metrics (Prometheus), openai_client (one client for this server or vLLM).

Nothing is imported here, so importing one module does not load the others (or torch).
"""

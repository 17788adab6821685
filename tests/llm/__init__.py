"""Helpers of the LLM profile's artifact tests (tests/test_llm_artifacts.py): the vLLM flag
checker and its data (the flags, metrics and quantization methods of one vLLM release, made by
tools/vllm_flags.py), Kubernetes checks the tabular tier has no use for, the Ollama Modelfile
parser, and hand-broken manifests proving each check can fail."""

"""vllm-mcp: a vLLM model behind the Model Context Protocol."""

__version__ = "0.1.0"

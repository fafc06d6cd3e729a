"""Side-by-side benchmark of vllm-mcp against the raw engine, `vllm serve` and a sequential server.

Run ``python -m bench --help``. Every contender gets the same prompts, the same fixed
output length (``min_tokens = max_tokens``) and the same engine arguments, one after
the other on the same machine, so their figures can be divided by each other.
"""

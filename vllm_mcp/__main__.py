"""``python -m vllm_mcp``: the same CLI as the ``vllm-mcp`` script."""

from vllm_mcp.cli import main

if __name__ == "__main__":
    main()

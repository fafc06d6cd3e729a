"""The tools mapped onto the official SDK's low-level ``Server``.

The SDK does the protocol: lifecycle and version negotiation (both eras: the
initialize handshake and the stateless 2026-07-28 ``server/discover``), tools/list,
tools/call (one task per request, so calls run concurrently and vLLM batches them),
ping, progress, cancellation. Every transport serves this one ``Server``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import X_MCP_HEADER_KEY

from vllm_mcp import __version__
from vllm_mcp.errors import EngineUnavailable, ToolError
from vllm_mcp.protocol.auth import session_namespace
from vllm_mcp.protocol.tasks import TaskServer, install_tasks
from vllm_mcp.protocol.tasks_ext import TasksExtension, install_extension
from vllm_mcp.protocol.transport import INVALID_PARAMS
from vllm_mcp.sessions.tasks import MemoryTaskStore
from vllm_mcp.tools import embed
from vllm_mcp.tools.calls import (
    ChatArguments,
    ChatResult,
    CompleteArguments,
    CompleteResult,
    EndSessionArguments,
    EndSessionResult,
    NoArguments,
)
from vllm_mcp.tools.generation import GenerationResult
from vllm_mcp.tools.handlers import ModelInfo, Tools, engine_error_message, schema
from vllm_mcp.tools.tasks import TaskRunner

log = logging.getLogger(__name__)

SESSION_HEADER = "Session-Id"
"""``session_id``'s 2026-07-28 ``x-mcp-header`` token: modern clients mirror the argument into
an ``Mcp-Param-Session-Id`` HTTP header, so a load balancer can keep a conversation on the
replica that holds its prefix cache (deploy/haproxy/vllm-mcp.cfg). Routing only: the argument
stays the truth, and the SDK refuses (400) a call whose header disagrees with it."""


def routed_by_session(input_schema: dict[str, Any]) -> dict[str, Any]:
    """``input_schema`` with ``session_id`` marked ``x-mcp-header`` (the spec allows it on a plain type only).

    An optional ``session_id`` (pydantic's ``anyOf: [string, null]``) is advertised as an
    optional string; the arguments model still accepts an explicit null.
    """
    prop = input_schema["properties"]["session_id"]
    if "anyOf" in prop:
        prop.update(next(s for s in prop.pop("anyOf") if s.get("type") == "string"))
        prop.pop("default", None)
    prop[X_MCP_HEADER_KEY] = SESSION_HEADER
    return input_schema


TOOLS = [
    types.Tool(
        name="chat_completion",
        title="Chat completion",
        description=(
            "Generate a reply from the served model. Pass session_id to continue a "
            "conversation: earlier turns are remembered. Send _meta.progressToken to "
            "receive the reply as it is generated (progress notifications carry the new text; "
            "while the call waits for the model to load or a free slot, they say so, without a total). "
            "json_schema, choice or regex constrain the reply; adapter picks a LoRA adapter, "
            "model one of the served models (model_info lists them)."
        ),
        input_schema=routed_by_session(schema(ChatArguments, "validation")),
        output_schema=schema(ChatResult, "serialization"),
        annotations=types.ToolAnnotations(
            title="Chat completion",
            # A session turn is appended to the store; nothing outside this server is touched.
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=False,
        ),
    ),
    types.Tool(
        name="complete",
        title="Raw completion",
        description=(
            "Continue a raw prompt, without the chat template: for base models, code completion "
            "and few-shot prompts. Same sampling, stop, structured-output, adapter, logprobs and "
            "streaming as chat_completion."
        ),
        input_schema=schema(CompleteArguments, "validation"),
        output_schema=schema(CompleteResult, "serialization"),
        annotations=types.ToolAnnotations(
            title="Raw completion",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=False,  # sampling: the same call may answer differently
            open_world_hint=False,
        ),
    ),
    types.Tool(
        name="model_info",
        title="Model information",
        description="The served model, the server's settings and its current state.",
        input_schema=schema(NoArguments, "validation"),
        output_schema=schema(ModelInfo, "serialization"),
        annotations=types.ToolAnnotations(
            title="Model information",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    ),
    types.Tool(
        name="end_session",
        title="End session",
        description="Forget one session's conversation history.",
        input_schema=routed_by_session(schema(EndSessionArguments, "validation")),
        output_schema=schema(EndSessionResult, "serialization"),
        annotations=types.ToolAnnotations(
            title="End session",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    ),
]
EMBED_TOOL = types.Tool(
    **embed.tool_fields(),
    input_schema=schema(embed.EmbedArguments, "validation"),
    output_schema=schema(embed.EmbedResult, "serialization"),
    annotations=types.ToolAnnotations(
        title="Embeddings",
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=True,  # the same input gives the same vector
        open_world_hint=False,
    ),
)
TOOL_NAMES = (*(t.name for t in TOOLS), EMBED_TOOL.name)
"""Every tool this server may offer; ``embed`` only where an embedding model is served."""


def metrics_caller(ctx: Any, mode: str) -> str:
    """The metrics' caller label (``VLLM_MCP_METRICS_CALLER_LABEL``): bounded by the operator.

    'token-file': the token file's caller names, which the operator chose and counted; every
    OAuth caller is 'oauth' (an OAuth verifier's tokens carry their issuer), since subjects
    and e-mails are personal data and one series each. 'off': always empty.
    """
    if mode != "token-file":
        return ""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    token = getattr(user, "access_token", None)
    if token is None:
        return ""
    return "oauth" if (token.claims or {}).get("iss") else str(token.client_id)


TASK_TOOLS = frozenset({"chat_completion", "complete"})
"""The tools a client may run as a task (``execution.taskSupport: "optional"``, protocol/tasks.py)."""
TASKS_SINCE = "2025-11-25"


def offered(tools: Tools) -> list[types.Tool]:
    """The tools this server lists: ``embed`` too when a served model is an embedding model."""
    return [*TOOLS, EMBED_TOOL] if tools.offers_embed else TOOLS


def _tools_for(version: str | None, listed: list[types.Tool]) -> list[types.Tool]:
    """``execution`` is 2025-11-25 vocabulary: a client on an older protocol gets today's list."""
    if version is not None and version < TASKS_SINCE:
        return listed
    return [
        t.model_copy(update={"execution": types.ToolExecution(task_support="optional")})
        if t.name in TASK_TOOLS
        else t
        for t in listed
    ]


def build_server(tools: Tools, tasks: TaskRunner | None = None) -> Server[Any]:
    """The SDK server over ``tools``; ``tasks`` runs task-augmented calls (in memory if None)."""
    if tasks is None:
        s = tools.settings
        tasks = TaskRunner(
            MemoryTaskStore(), s.task_ttl, s.max_task_seconds, s.max_tasks_per_caller, tools.metrics.set_tasks
        )
    tools.task_counts = tasks.counts
    listed = offered(tools)
    names = tuple(t.name for t in listed)

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=_tools_for(getattr(ctx, "protocol_version", None), listed))

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        send = _progress_sender(ctx) if _progress_token(ctx) is not None else None
        return await (await check_call(ctx, params))(send)

    async def check_call(ctx: Any, params: types.CallToolRequestParams) -> Run:
        """One tools/call, direct or as a task, its arguments checked now: what runs it.

        A bad argument gives a run that answers the error a plain call gets, at once (and a
        task is not created for it, protocol/tasks.py: ``run.refusal``); the run takes the
        progress sender (None: no progress)."""
        name = params.name
        if name not in names:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown tool: {name!r}; this server offers {', '.join(names)}",
            )
        drop_gateway_arguments(params.arguments)
        label = metrics_caller(ctx, tools.settings.metrics_caller_label)
        namespace = session_namespace(ctx)  # sessions: OAuth and token-file callers apart
        model = tools.called_model(name, params.arguments)  # a configured one, or None
        run = functools.partial(Run, name, label, tools, model)
        try:
            if name == "chat_completion":
                work: Callable[[Any], Awaitable[Any]] = tools.checked_chat(params.arguments, caller=namespace)
            elif name == "complete":  # no session, so no caller namespace
                work = tools.checked_complete(params.arguments)
            elif name == "model_info":
                work = lambda send: tools.model_info(params.arguments)  # noqa: E731
            elif name == "embed":
                work = lambda send: tools.embed(params.arguments, send)  # noqa: E731
            else:
                work = lambda send: tools.end_session(params.arguments, caller=namespace)  # noqa: E731
        except ToolError as e:
            return run(refusal=(e.outcome, _error(str(e))))
        return run(work)

    server = TaskServer(
        "vllm-mcp",
        version=__version__,
        instructions="Use the vLLM models this server runs: chat_completion, or complete for a raw "
        "prompt; embed for vectors where an embedding model is served. model_info lists the models.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    install_tasks(server, tasks, check_call, TASK_TOOLS)
    install_extension(server, TasksExtension(tasks, check_call, TASK_TOOLS), call_tool)
    return server


class Run:
    """A checked tools/call, run with a progress sender (or None): the tool's result or its error
    as a ``CallToolResult``, timed and counted in the metrics (by model where one is named).
    ``refusal``: the arguments were bad, and running it answers that error at once."""

    def __init__(
        self,
        name: str,
        label: str,
        tools: Tools,
        model: Any,
        work: Callable[[Any], Awaitable[Any]] | None = None,
        refusal: tuple[str, types.CallToolResult] | None = None,
    ) -> None:
        self.name, self._label, self._tools, self._model = name, label, tools, model
        self._work, self.refusal = work, refusal

    async def __call__(self, send: Callable[[str, float, int | None], Any] | None) -> types.CallToolResult:
        started = time.monotonic()
        metrics = self._tools.metrics
        metrics.request_started(self.name)
        outcome = "error"
        try:
            if self.refusal is not None:
                outcome = self.refusal[0]
                return self.refusal[1]
            assert self._work is not None
            result = await self._work(send)
            outcome = "ok"
            return _ok(result)
        except ToolError as e:
            outcome = e.outcome
            return _error(str(e))
        except EngineUnavailable as e:
            return _error(engine_error_message(e))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            seconds = time.monotonic() - started
            model = self._model
            metrics.request_finished(
                self.name, outcome, seconds, self._label, self._tools.metrics_model(model)
            )
            log.debug(
                "call finished",
                extra={
                    "tool": self.name,
                    "model": model.name if model is not None else None,
                    "outcome": outcome,
                    "seconds": round(seconds, 3),
                },
            )


GATEWAY_ARGUMENTS = ("headers",)
"""Arguments gateways add to every call, never part of a tool's schema.

FluidMCP's main branch sets ``arguments.headers`` to all HTTP request headers, the
caller's ``Authorization: Bearer`` token included, on every tools/call.
"""


def drop_gateway_arguments(arguments: dict[str, Any] | None) -> None:
    """Remove gateway-injected arguments in place, before validation, for every tool.

    In place, so the SDK's request object no longer holds the values either: they are
    never validated, logged, echoed in an error, stored in a session or sent to the engine.
    """
    if isinstance(arguments, dict):
        for key in GATEWAY_ARGUMENTS:
            arguments.pop(key, None)


def _progress_token(ctx: Any) -> Any:
    meta = getattr(ctx, "meta", None)
    if meta is None:
        return None
    if isinstance(meta, dict):
        return meta.get("progressToken") or meta.get("progress_token")
    return getattr(meta, "progress_token", None)


def _progress_sender(ctx: Any) -> Callable[[str, float, int | None], Any]:
    async def send(text: str, tokens: float, total: int | None) -> None:
        await ctx.session.report_progress(tokens, total, text)

    return send


def _ok(result: Any) -> types.CallToolResult:
    data = result.model_dump(mode="json", by_alias=True)
    if isinstance(result, (ChatResult, embed.EmbedResult)):
        text = result.shown_text()  # the answer (the thinking only with include_reasoning); a summary
    else:
        text = data["text"] if isinstance(result, GenerationResult) else json.dumps(data)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=data)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)

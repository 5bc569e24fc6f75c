"""The bodies of SGLang's native (non-OpenAI) endpoints, as a stand-in worker answers them.

sglang-router (the Rust load balancer, ``sglang_router.launch_router``) asks these of every
worker it registers and watches; the installed router (0.3.2) calls, in order:

- ``GET /health`` to find out the worker speaks HTTP (then gRPC is not tried), and again every
  ``--health-check-interval-secs`` to mark it healthy or unhealthy;
- ``GET /server_info``, falling back to ``/get_server_info`` on a 404: ``served_model_name``
  and ``model_path`` name the worker's model (``model_id`` and ``dp_size`` for DP-aware
  routing);
- ``GET /model_info``, falling back to ``/get_model_info``: ``model_type``, ``architectures``;
- ``GET /get_load`` (power-of-two policy): one entry per DP rank with ``num_tokens``.

SGLang's own ``http_server.py`` answers ``/model_info`` with the keys below and
``/server_info`` with its server arguments (``dataclasses.asdict(ServerArgs)``), the
scheduler's limits, ``internal_states`` per DP rank and ``version``: the subset here is what
a launch with Step3-VL's flags (see guiagent/serve.py) reports.
"""

from __future__ import annotations

from typing import Any

# the SGLang release the stand-in claims to be (0.5.8 or newer serves Step3-VL, per its model card)
SGLANG_VERSION = "0.5.8"


def model_info(model_path: str) -> dict[str, Any]:
    """``/model_info`` (and the deprecated ``/get_model_info``) of a Step3-VL server."""
    return {
        "model_path": model_path,
        "tokenizer_path": model_path,
        "is_generation": True,
        "preferred_sampling_params": None,
        "weight_version": "default",
        "has_image_understanding": True,
        "has_audio_understanding": False,
    }


def server_info(
    model_path: str,
    served_model_name: str,
    *,
    host: str,
    port: int,
    context_length: int,
    running: int,
) -> dict[str, Any]:
    """``/server_info`` (and the deprecated ``/get_server_info``): server args + scheduler info."""
    return {
        # the server arguments of `sglang.launch_server` with Step3-VL's flags (guiagent/serve.py)
        "model_path": model_path,
        "tokenizer_path": model_path,
        "tokenizer_mode": "auto",
        "skip_tokenizer_init": False,
        "load_format": "auto",
        "trust_remote_code": True,
        "context_length": context_length,
        "is_embedding": False,
        "served_model_name": served_model_name,
        "host": host,
        "port": port,
        "tp_size": 1,
        "dp_size": 1,
        "reasoning_parser": "deepseek-r1",
        "tool_call_parser": "hermes",
        "chat_template": None,
        "weight_version": "default",
        # the scheduler's limits
        "max_total_num_tokens": context_length * 8,
        "max_req_input_len": context_length - 5,
        "internal_states": [
            {
                "last_gen_throughput": 0.0,
                "num_running_reqs": running,
                "avg_spec_accept_length": None,
            }
        ],
        "version": SGLANG_VERSION,
    }


def load(running: int, waiting: int, tokens: int) -> list[dict[str, int]]:
    """``/get_load``: one entry per DP rank (the stand-in has one)."""
    return [{"dp_rank": 0, "num_reqs": running, "num_waiting_reqs": waiting, "num_tokens": tokens}]

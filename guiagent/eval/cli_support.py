"""Shared options of the evaluation commands (calibrate, eval screenspot)."""

from __future__ import annotations

import argparse
import re

from guiagent.core.geometry import CoordSpace
from guiagent.models.profiles import DEFAULT_PROFILE, ModelProfile, ProfileError, get_profile


def add_model_arguments(parser: argparse.ArgumentParser, with_space: bool = True) -> None:
    parser.add_argument(
        "--model-url", required=True, help="base URL of the OpenAI-compatible server"
    )
    parser.add_argument("--model", default=None, help="served model name (default: ask the server)")
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help="model profile name or YAML file (default: %(default)s)",
    )
    if with_space:
        parser.add_argument(
            "--coord-space",
            choices=[s.value for s in CoordSpace],
            default=None,
            help="what the model's coordinates mean (default: the profile's)",
        )
    parser.add_argument(
        "--max-image-tokens",
        type=int,
        default=None,
        help="image token budget (default: the profile's)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def profile_from_args(args: argparse.Namespace) -> ModelProfile:
    """The profile with command-line overrides applied; raises ProfileError on bad input."""
    profile = get_profile(args.profile)
    if getattr(args, "max_image_tokens", None) is not None and args.max_image_tokens <= 0:
        raise ProfileError(f"--max-image-tokens must be positive, got {args.max_image_tokens}")
    return profile.with_overrides(
        coord_space=getattr(args, "coord_space", None), max_image_tokens=args.max_image_tokens
    )


def parse_viewport(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match[1]) <= 0 or int(match[2]) <= 0:
        raise ValueError(f"--viewport must look like 1280x800, got {text!r}")
    return int(match[1]), int(match[2])

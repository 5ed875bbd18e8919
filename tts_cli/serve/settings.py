"""`tts serve`'s own settings: where it listens, who may call it, and the limits it puts on
requests. Declared like the run settings (settings.py), so cli_options derives the flags; the
search and model flags are `tts solve`'s, and are the server's defaults."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Annotated, Optional

from pydantic import Field, TypeAdapter, ValidationError

from ..search.types import Positive, Text, setting
from ..settings import SettingsError, parse_concurrency
from ..yamlfile import first_error

API_KEY_ENV = "TTS_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    host: Text = setting("127.0.0.1", "Address to listen on. Anything but loopback needs --api-key.")
    port: Annotated[int, Field(ge=0, le=65535, strict=True)] = setting(8000, "Port (0: any free port).")
    api_key: Optional[Text] = setting(None, f"Every request must send `Authorization: Bearer KEY` (default: "
                                            f"${API_KEY_ENV}).")
    concurrency: Text = setting("auto", "Searches of --n paths whose sequences the engine holds at once "
                                        "(sizes it, as tts grade --concurrency): a number, or auto.")
    queue_size: Positive = setting(64, "Requests that may wait for room in the engine; one more is answered "
                                       "429 with Retry-After.")
    max_request_n: Positive = setting(64, "Largest budget n a request may ask for (and no more than the engine "
                                          "holds).")
    max_request_steps: Positive = setting(40, "Largest max_steps a request may ask for.")
    max_request_step_tokens: Positive = setting(1024, "Largest max_step_tokens a request may ask for.")
    max_body_bytes: Positive = setting(1 << 20, "Largest request body; a larger one is answered 413.")

    def concurrency_value(self) -> int | None:
        return parse_concurrency(self.concurrency)


def build_serve(flags: dict) -> ServeSettings:
    """The server's settings from its flags (None: not given), the key from $TTS_API_KEY when
    --api-key is not given. A host that is not loopback without a key is refused: the server
    runs searches for anyone who can reach it."""
    values = {k: flags[k] for k in ServeSettings.__dataclass_fields__ if flags.get(k) is not None}
    if "api_key" not in values and os.environ.get(API_KEY_ENV):
        values["api_key"] = os.environ[API_KEY_ENV]
    try:
        serve = TypeAdapter(ServeSettings).validate_python(values)
    except ValidationError as e:
        loc, _, message = first_error(e)
        raise SettingsError(f"--{str(loc[0]).replace('_', '-') if loc else 'value'}: {message}")
    serve.concurrency_value()  # a bad --concurrency fails now
    if serve.api_key is not None and not serve.api_key.strip():
        raise SettingsError("--api-key: the key is empty")
    if not is_loopback(serve.host) and not serve.api_key:
        raise SettingsError(f"--host {serve.host}: not a loopback address; anyone who can reach it could run "
                            f"searches, so it needs --api-key KEY (or ${API_KEY_ENV})")
    return serve


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False

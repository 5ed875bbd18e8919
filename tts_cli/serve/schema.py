"""The OpenAI request and response bodies tts serve reads and writes, as pydantic models.

Requests accept the OpenAI parameters a client library may send; the ones a search has no use
for (max_tokens, stop, presence_penalty, user, ...) are accepted and ignored, as other
OpenAI-compatible servers do. What is tts's own goes in one `tts` object (the OpenAI client's
`extra_body={"tts": {...}}`), checked by requests.py with the settings code of `tts solve`.
Responses are OpenAI's objects with one more field, `tts`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


# --- requests -------------------------------------------------------------------------------

class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: Optional[str] = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: Union[str, list[ContentPart], None] = None

    def text(self) -> str:
        """The message's text (the text parts of a list of parts, joined)."""
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Request(BaseModel):
    """What both completion routes take."""
    model_config = ConfigDict(extra="ignore")
    model: str
    n: int = Field(1, ge=1, le=64, description="Choices returned: the best distinct answers.")
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    tts: Optional[dict[str, Any]] = Field(None, description="The search: strategy, n (or budget), prm, tree, "
                                                            "and every search option of tts solve.")


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Request):
    prompt: Union[str, list[str]]


# --- responses ------------------------------------------------------------------------------

class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: Optional[str]
    logprobs: None = None


class Delta(BaseModel):
    role: Optional[str] = None
    content: Optional[str] = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Optional[str] = None
    logprobs: None = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class _Response(BaseModel):
    id: str
    object: str
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list
    usage: Optional[Usage] = None
    tts: Optional[dict[str, Any]] = None  # the search: answer, votes, candidates, compute (progress in streams)

    def body(self) -> dict:
        """The JSON body: null `usage` and `tts` left out (progress chunks carry no usage, content
        chunks no tts)."""
        out = self.model_dump(mode="json")
        for key in ("usage", "tts"):
            if out.get(key) is None:
                out.pop(key, None)
        for choice in out.get("choices", []):  # a delta holds only what it adds: {} for a progress chunk
            if isinstance(choice.get("delta"), dict):
                choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
        return out


class ChatCompletion(_Response):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class ChatCompletionChunk(_Response):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class TextCompletion(_Response):
    """/v1/completions, whole or streamed (OpenAI uses one object name for both)."""
    object: Literal["text_completion"] = "text_completion"
    choices: list[TextChoice]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tts"
    tts: Optional[dict[str, Any]] = None  # the search this name runs: strategy, n


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorBody(BaseModel):
    error: ErrorDetail

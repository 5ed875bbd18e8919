"""Prompts in the model's own chat format.

The template is the Jinja2 one stored in the GGUF (tokenizer.chat_template), rendered with
llama-cpp-python's formatter; a model without one (a base model) gets a plain "Question/Answer"
layout. Continuing an assistant message is rendering the conversation up to the assistant's turn
and appending the partial answer: that is how a search extends a solution step by step.
"""

from __future__ import annotations

from pathlib import Path

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from .llamacpp import Model


class ChatTemplateError(Exception):
    """The model's chat template cannot render a prompt. The model's fault, not one problem's:
    a batch stops (keeping what finished) rather than recording every problem as an error."""


def render_chat(model: Model, messages: list[dict], *, assistant_prefix: str = "") -> str:
    """The prompt text for `messages`, ending where the assistant's answer starts (plus
    `assistant_prefix`, an answer in progress). Special tokens appear as text and are parsed
    when tokenized.

    A GGUF's template is code from the model file: it is rendered only in Jinja's immutable
    sandbox (llama-cpp-python's formatter). Several families reject a system message; then the
    system text goes at the top of the first user message, as other runners do."""
    if not model.chat_template:
        return plain_prompt(messages) + assistant_prefix
    if getattr(model, "fold_system", False):
        messages = fold_system(messages)
    try:
        return _render(model, messages) + assistant_prefix
    except Exception as e:  # noqa: BLE001 - a template raises whatever it likes
        error = e
    if any(m["role"] == "system" for m in messages):
        try:
            prompt = _render(model, fold_system(messages))
        except Exception:  # noqa: BLE001 - report the first failure, the template's own
            pass
        else:
            model.fold_system = True  # once per model: later prompts go folded at once
            return prompt + assistant_prefix
    reason = " ".join(str(error).split()) or type(error).__name__
    raise ChatTemplateError(f"{Path(str(model.path)).name}: its chat template cannot render a prompt "
                            f"({type(error).__name__}: {reason[:200]}); use --prompt few-shot to solve "
                            "without it")


def _render(model: Model, messages: list[dict]) -> str:
    formatter = Jinja2ChatFormatter(
        template=model.chat_template,
        eos_token=model.token_text(model.eos) if model.eos >= 0 else "",
        bos_token=model.token_text(model.bos) if model.bos >= 0 else "",
        add_generation_prompt=True,
    )
    return formatter(messages=messages).prompt


def fold_system(messages: list[dict]) -> list[dict]:
    """The system message's text at the top of the first user message."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}" if system else m["content"]
            break
    return rest


# For base models (no chat template): worked examples in the step format the search expects
# (steps separated by a blank line, the answer in \boxed{}).
FEW_SHOT = [
    ("Tom has 3 apples and buys 5 more. How many apples does he have now?",
     "Tom starts with 3 apples.\n\nHe buys 5 more, so 3 + 5 = 8.\n\nThe answer is \\boxed{8}."),
    ("What is 12 + 9?", "12 + 9 = 21.\n\nThe answer is \\boxed{21}."),
    ("A box holds 4 rows of 6 eggs. 5 eggs break. How many eggs are left?",
     "The box holds 4 * 6 = 24 eggs.\n\n5 break, so 24 - 5 = 19 are left.\n\nThe answer is \\boxed{19}."),
]


def few_shot_prompt(problem: str) -> str:
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n\n" for q, a in FEW_SHOT)
    return f"{shots}Question: {problem.strip()}\nAnswer:"


def plain_prompt(messages: list[dict]) -> str:
    """A template-free layout for base models."""
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(m["content"].strip() + "\n\n")
        elif m["role"] == "user":
            parts.append("Question: " + m["content"].strip() + "\n")
        else:
            parts.append("Answer: " + m["content"].strip() + "\n\n")
    parts.append("Answer:")
    return "".join(parts)

"""Prompts in the model's own chat format.

The template is the Jinja2 one stored in the GGUF (tokenizer.chat_template), rendered with
llama-cpp-python's formatter; a model without one (a base model) gets a plain "Question/Answer"
layout. Continuing an assistant message is rendering the conversation up to the assistant's turn
and appending the partial answer: that is how a search extends a solution step by step.
"""

from __future__ import annotations

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from .llamacpp import Model


def render_chat(model: Model, messages: list[dict], *, assistant_prefix: str = "") -> str:
    """The prompt text for `messages`, ending where the assistant's answer starts (plus
    `assistant_prefix`, an answer in progress). Special tokens appear as text and are parsed
    when tokenized."""
    if model.chat_template:
        formatter = Jinja2ChatFormatter(
            template=model.chat_template,
            eos_token=model.token_text(model.eos) if model.eos >= 0 else "",
            bos_token=model.token_text(model.bos) if model.bos >= 0 else "",
            add_generation_prompt=True,
        )
        prompt = formatter(messages=messages).prompt
    else:
        prompt = plain_prompt(messages)
    return prompt + assistant_prefix


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

"""What the AI reads from an item, and checks on it as untrusted content."""

from __future__ import annotations

import re
from typing import Any

from hitl_processor.instruction_probe import instruction_probe
from hitl_shared.workflows.config import WorkflowConfig

# What an item says to the model rather than about the customer's matter, in families of
# patterns (a reviewer-facing flag, not a proof: it sends the item to full review at least).
# False positives were measured on 10,003 real banking customer messages (BANKING77): none.
# Patterns only catch what they were written for (1 of 20 phrasings written apart from them,
# benchmarks/train_instruction_probe.py); the learned probe after them catches more.
_GAP = "(?:\\s+[\\w'\u2019-]+){0,4}?"  # up to four words in between ("all of your previous")
_FAMILIES: dict[str, str] = {
    # "Ignore all previous instructions", "override the rules", "forget your guidelines"
    "override": r"\b(ignore|disregard|forget|override|bypass)\b" + _GAP + r"\s+"
    r"(instructions?|rules|prompts?|guidelines|polic(y|ies)|directions|directives"
    r"|system\s+message|context)\b",
    # "You are now an admin", "from now on you will", "pretend to be", "act as the system"
    "role": r"\byou\s+are\s+now\s+(a|an|in|the|my)\b|\bfrom\s+now\s+on,?\s+you\b"
    r"|\bpretend\s+(to\s+be|you\s+are)\b|\b(act|behave|roleplay)\s+as\s+(a|an|the|my)\b"
    r"|\bnew\s+instructions\s*:",
    # "the system prompt", "your hidden instructions"
    "prompt": r"\b(system|developer|hidden|original|initial)\s+(prompt|message|instructions)\b",
    # Chat markup and role headers smuggled into the text.
    "markup": r"<\|?\s*(im_start|im_end|system|assistant|endoftext)\s*\|?>"
    r"|\[/?INST\]|<<\s*/?SYS\s*>>|</?(system|assistant|instructions?)>|^\s*#{2,}\s*(system|instructions?|assistant)\b"
    r"|^\s*(system|assistant)\s*:",
    # Telling the model what to answer.
    "answer": r"\b(respond|reply|answer|output|return)\s+(only\s+)?with\s+(the\s+)?"
    r"(label|category|json|score|word|following|approved)\b"
    r"|\b(classify|label|categori[sz]e|tag|score|rate)\s+(this|it|me|the)(\s+(ticket|item"
    r"|message|email|request|invoice|application|candidate))?\s+as\b"
    r"|\b(set|change)\s+the\s+(label|category|priority|score|confidence|status)\s+to\b"
    r"|\bconfidence\s+(of\s+|to\s+|=\s*|:\s*)?(100|1\.0)\b",
    # Steering the review itself.
    "approval": r"\b(approve|accept|mark)\s+(this|it|the)(\s+(refund|request|claim|invoice"
    r"|ticket))?\s+(as\s+)?(approved|valid|urgent|safe|legitimate|genuine)\b"
    r"|\b(auto-?approve|skip\s+(the\s+)?(human\s+)?review|no\s+(human\s+)?review\s+(is\s+)?"
    r"needed|without\s+(human\s+)?review|do\s+not\s+escalate|don'?t\s+escalate)\b",
    # Addressing the model directly.
    "address": r"\b(dear|hey|attention|note\s+to\s+the|to\s+the)\s+(ai|assistant|chatbot|bot"
    r"|model|llm|gpt|language\s+model)\b|\bas\s+an\s+ai(\s+language)?\s+model\b",
    # Writing to the automated reader by role: "note for the automated reviewer",
    # "instructions for the language model", "as the model processing this", "hey bot,".
    # ("note for the agent" or "for the assistant" can mean a person: those need "automated")
    "reader": r"\b(note|notes|message|instructions?|attention|memo)\s+(to|for)\s+(the\s+|any\s+)?"
    r"((automated|automatic|ai|language|machine)\s+(reviewer|system|model|assistant|agent"
    r"|screener|filter)|llm|classifier|bot|chatbot|ai)\b"
    r"|\battention,?\s+(automated|ai)\s+(system|reviewer|model|assistant)\b"
    r"|\bas\s+the\s+(ai|model|llm|system|classifier|bot|assistant)\s+(processing|reading"
    r"|reviewing|handling|analy[sz]ing|screening)\b"
    r"|^\s*(hey|hi|hello|dear|ok|okay)?,?\s*(ai|bot|llm|gpt|chatgpt)\s*[:,]\s"
    r"|\b(tell|instruct|inform)\s+the\s+(classifier|model|ai|bot|system|algorithm)\s+(that|to)\b",
    # Claiming authority over the model's instructions.
    "authority": r"\b(your|the|my|all)\s+(previous|prior|earlier|original|old)\s+(directions"
    r"|instructions|rules|orders|guidelines|prompts?)\s+(no\s+longer\s+apply|(are|is)\s+"
    r"(void|cancell?ed|obsolete|revoked|replaced))\b"
    r"|\bwhatever\s+your\s+(prompt|instructions|rules|guidelines|programming)\s+says?\b"
    r"|\bregardless\s+of\s+(your|the)\s+(instructions|prompt|criteria|scoring|rubric)\b"
    r"|\byour\s+(task|job|role|instructions|objective)\s+(has|have)\s+(now\s+)?changed\b"
    r"|\bi\s+am\s+your\s+(developer|creator|admin|administrator|operator|programmer"
    r"|owner)\b"
    r"|\b(stop|cease)\s+what\s+you\s+are\s+doing\s+and\s+(follow|obey|do)\b",
    # Keeping a human out of the loop, or fixing the outcome.
    "bypass": r"\b(do\s+not|don'?t|never)\s+(send|pass|forward|route|show|give)\s+(this|it)"
    r"\s+to\s+(a\s+|any\s+)?(human|person|people|reviewer|staff)\b"
    r"|\bno\s+need\s+for\s+(a|any)\s+(human|person|reviewer)\s+to\s+(look|check|review"
    r"|see)\b|\bauto-?(accept|approve|pass)\b"
    r"|\b(output|say|return|print)\s+[\"'“]?(approved|accepted|valid|yes|true)[\"'”]?"
    r"\s+(for|on|to)\s+(this|it|the)\b"
    r"|\b(score|rate|grade)\s+(it|this|me|them|this\s+\w+)\s+(the\s+)?(highest|maximum"
    r"|max|top|10\s*/\s*10|10\s+out\s+of\s+10)\b",
    # The override in other languages our users' customers write in.
    "override_i18n": r"\bignorier\w*\s+(alle\s+|die\s+)?(vorherigen\s+|bisherigen\s+)?"
    r"(anweisungen|regeln)\b|\bignore[rz]?\s+(toutes\s+)?les\s+(instructions|consignes)\b"
    r"|\bignora\s+(todas\s+)?las\s+instrucciones\b|\bnegeer\s+(alle\s+)?(vorige\s+)?"
    r"instructies\b|\bignora\s+(tutte\s+)?le\s+istruzioni\b"
    r"|\bignore\s+(todas\s+)?as\s+instru[cç][oõ]es\b",
}
_INJECTION = re.compile(
    "|".join(f"(?P<{name}>{pattern})" for name, pattern in _FAMILIES.items()),
    re.IGNORECASE | re.MULTILINE,
)
# Invisible characters that can carry text a reviewer never sees: zero-width and bidi
# controls, and Unicode tag characters.
_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\U000e0000-\U000e007f]")


def injection_signals(text: str, *, learned: bool = True) -> list[str]:
    """Which families of instruction-like content the text holds (empty: none).

    ``learned``: also ask the instruction probe (``instruction_probe.py``), which catches
    phrasings no pattern names; it runs the sentence encoder, so call it off the event loop.
    """
    found = {m.lastgroup for m in _INJECTION.finditer(text) if m.lastgroup}
    if len(_HIDDEN.findall(text)) >= 3:
        found.add("hidden_characters")
    if learned and not found:
        probe = instruction_probe()
        if probe is not None and probe.speaks_to_the_ai(text):
            found.add("instruction_probe")
    return sorted(found)


def item_text(config: WorkflowConfig, data: dict[str, Any]) -> str:
    parts = []
    for name in config.text_fields:
        value = data.get(name)
        if value is None:
            continue
        parts.append(value if isinstance(value, str) else str(value))
    return "\n".join(parts)


def safety_flags(text: str) -> list[str]:
    return ["possible_prompt_injection"] if injection_signals(text) else []

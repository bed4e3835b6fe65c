"""The dialogue engine, transport-agnostic: a lead's message in, replies and buttons out.

engine.py (Dialogue: entry points, per-lead order, the dispatch table, the Claude turn's decisions),
booking.py (Booking: slots, the lead's own time, confirm, move, cancel), intake.py (storing what
comes in), voice.py (saying things through the outbox), turn.py (the types a turn passes around).
"""

from salesbot.claude.dialogue import Answer
from salesbot.dialogue.engine import Dialogue
from salesbot.dialogue.turn import DialogueConfig, DialogueLLM, Incoming, Sender, Turn
from salesbot.store.leads import STATE_CONFIRM_CANCEL, STATE_CONFIRM_TIME, STATE_CUSTOM_TIME

__all__ = ["STATE_CONFIRM_CANCEL", "STATE_CONFIRM_TIME", "STATE_CUSTOM_TIME", "Answer", "Dialogue", "DialogueConfig",
           "DialogueLLM", "Incoming", "Sender", "Turn"]

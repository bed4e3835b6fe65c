"""The store: the connection (connection.py), the models (models.py), numbered migrations
(migrations.py), one writing module per table (leads.py: lead, message, meeting, meeting_reminder,
lead_status_change; outbox.py: outbox; ledger.py: llm_call; events.py: webhook_event; budget.py:
budget_alert) and the read models (queries.py)."""

from salesbot.store.clock import stamp, to_local, to_utc_naive, utcnow
from salesbot.store.connection import (
    BUSY_TIMEOUT_MS,
    Database,
    db,
    open_database,
    transaction,
    without_waiting,
    writable,
)
from salesbot.store.ledger import append_llm_call
from salesbot.store.migrations import MIGRATIONS, migrate
from salesbot.store.models import (
    LEAD_STATUSES,
    BaseModel,
    Lead,
    LeadStatusChange,
    LlmCall,
    Meeting,
    MeetingReminder,
    Message,
    Outbox,
    WebhookEvent,
    display_name,
)

__all__ = ["BUSY_TIMEOUT_MS", "LEAD_STATUSES", "MIGRATIONS", "BaseModel", "Database", "Lead", "LeadStatusChange",
           "LlmCall", "Meeting", "MeetingReminder", "Message", "Outbox", "WebhookEvent", "append_llm_call", "db",
           "display_name", "migrate", "open_database", "stamp", "to_local", "to_utc_naive", "transaction",
           "utcnow", "without_waiting", "writable"]

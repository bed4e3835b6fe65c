"""The Peewee models: the tables as the README's Database section names them. Reads may use them; every write of a table
goes through its one writer (leads.py, outbox.py, ledger.py). The DDL lives in migrations.py, and a
test checks that the migrated schema and these models agree."""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    BooleanField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from salesbot.store.clock import utcnow
from salesbot.store.connection import db

LEAD_STATUSES = ("new", "warm", "hot", "cold", "lost")


class BaseModel(Model):
    class Meta:
        database = db


class Lead(BaseModel):
    telegram_id = BigIntegerField(null=True, unique=True)
    access_hash = BigIntegerField(null=True)
    username = TextField(null=True)
    first_name = TextField(null=True)
    status = TextField(default="new")
    state = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    last_message_at = DateTimeField(null=True)
    follow_up_count = IntegerField(default=0)
    last_follow_up_at = DateTimeField(null=True)
    opted_out = BooleanField(default=False)
    cold_reason = TextField(null=True)
    pending_time = DateTimeField(null=True)  # own time understood, awaiting the lead's confirmation
    opted_out_reason = TextField(null=True)  # stop (the lead's /stop), or why Telegram cannot reach them
    pending_day = DateField(null=True)  # a day the lead named without a time ("завтра"), local to SALESBOT_TZ
    summary = TextField(null=True)  # what the model learned: need, budget, deadline, who decides, contact
    source = TextField(null=True)  # the deep link's start parameter on first contact (issue 22)
    first_answer_at = DateTimeField(null=True)  # the bot's first message to the lead
    deleted_at = DateTimeField(null=True)  # `leads delete`: the row stays, anonymous, for the funnel
    topic_id = BigIntegerField(null=True)  # the lead's topic in the staff group (salesbot/inbox)
    topic_chat_id = BigIntegerField(null=True)  # the group that topic is in (-100…)
    takeover_at = DateTimeField(null=True)  # a person took the conversation over: the bot is quiet
    takeover_by = BigIntegerField(null=True)  # the staff member's Telegram id; NULL from the terminal
    takeover_until = DateTimeField(null=True)  # the takeover ends by itself then (SALESBOT_TAKEOVER_HOURS)
    handoff_at = DateTimeField(null=True)  # the lead asked for a person; cleared once staff answer
    handoff_alerts = IntegerField(default=0)  # alerts sent for that handoff (the first, one repeat)

    class Meta:
        table_name = "lead"

    @property
    def display_name(self) -> str:
        return display_name(self.first_name, self.username, self.id)


def display_name(first_name: str | None, username: str | None, lead_id: int | None = None) -> str:
    """How staff see a lead: `Анна @anna`, `@anna`, `Анна`, or `lead 7` when Telegram gave neither."""
    name = " ".join(part for part in (first_name or "", f"@{username}" if username else "") if part)
    return name or (f"lead {lead_id}" if lead_id is not None else "—")


class Message(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", backref="messages", on_delete="CASCADE")
    role = TextField()  # lead | bot | manager (staff's words to the lead) | note (internal, never sent)
    text = TextField()
    created_at = DateTimeField(default=utcnow)
    unanswered = BooleanField(default=False)  # a lead message Claude has not answered (yet)
    telegram_message_id = BigIntegerField(null=True)  # a lead message: Telegram's id of it
    model_chars = IntegerField(null=True)  # a bot message: its first this many characters are the model's
    staff_id = BigIntegerField(null=True)  # manager / note: the staff member's Telegram id (NULL: terminal)

    class Meta:
        table_name = "message"


class Meeting(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", backref="meetings", on_delete="CASCADE")
    starts_at = DateTimeField()
    status = TextField(default="booked")  # booked | cancelled | done | no_show
    source = TextField()  # slot | custom
    created_at = DateTimeField(default=utcnow)
    confirmed_at = DateTimeField(null=True)  # the lead pressed «Подтверждаю»
    cancelled_at = DateTimeField(null=True)
    cancelled_by = TextField(null=True)  # lead | staff (a moved meeting: moved_to is set)
    cancel_reason = TextField(null=True)  # what staff gave with --reason
    moved_to = IntegerField(null=True)  # the meeting that replaced this one
    outcome_at = DateTimeField(null=True)  # when staff marked it done or no_show

    class Meta:
        table_name = "meeting"


class MeetingReminder(BaseModel):
    """What was sent about a meeting, once each: a reminder before it (`24h`, `2h`…) or `no_show`."""

    meeting = ForeignKeyField(Meeting, column_name="meeting_id", backref="reminders", on_delete="CASCADE")
    kind = TextField()
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "meeting_reminder"


class Outbox(BaseModel):
    """A message on its way to a lead or a manager (delivery.py owns these rows)."""

    lead = ForeignKeyField(Lead, column_name="lead_id", null=True, backref="outbox", on_delete="CASCADE")
    chat_id = BigIntegerField(null=True)  # a manager's Telegram id, for a notice
    message = ForeignKeyField(Message, column_name="message_id", null=True, on_delete="CASCADE")
    kind = TextField()  # reply | notice | reminder | staff (a post to the staff group's topic of the lead)
    text = TextField()
    buttons = TextField(null=True)
    random_id = BigIntegerField()
    state = TextField(default="queued")  # queued | sent | failed
    telegram_message_id = BigIntegerField(null=True)
    attempts = IntegerField(default=0)
    error = TextField(null=True)
    pressed = TextField(null=True)
    not_before = DateTimeField()
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)
    follow_up_step = TextField(null=True)  # a reminder of the sweep: follow_up_1 | follow_up_2 | hot_1 | hot_2
    forward_id = BigIntegerField(null=True)  # staff: the lead's Telegram message to forward (media)
    meeting_id = IntegerField(null=True)  # the meeting this message is about (checked again before sending)
    about = TextField(null=True)  # meeting_reminder | no_show | staff_moved | staff_cancelled

    class Meta:
        table_name = "outbox"


class LlmCall(BaseModel):
    lead = ForeignKeyField(Lead, column_name="lead_id", null=True, backref="llm_calls", on_delete="SET NULL")
    purpose = TextField()
    model = TextField()
    input_tokens = IntegerField(default=0)
    output_tokens = IntegerField(default=0)
    cache_creation_input_tokens = IntegerField(default=0)
    cache_read_input_tokens = IntegerField(default=0)
    attempts = IntegerField(default=1)
    duration_ms = IntegerField(default=0)
    error = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    request_id = TextField(null=True)  # the API's request-id, to quote to Anthropic support
    stop_reason = TextField(null=True)
    thinking_tokens = IntegerField(default=0)  # part of output_tokens
    cache_creation_5m_input_tokens = IntegerField(default=0)  # the two add up to cache_creation_input_tokens
    cache_creation_1h_input_tokens = IntegerField(default=0)

    class Meta:
        table_name = "llm_call"


# --- migrations ---------------------------------------------------------------------------------
# Each migration is a list of SQL statements applied once, in order, inside one transaction, and


class LeadStatusChange(BaseModel):
    """Every change of a lead's status (written by leads.py): the funnel's "ever warm", "ever hot"."""

    lead = ForeignKeyField(Lead, column_name="lead_id", backref="status_changes", on_delete="CASCADE")
    at = DateTimeField()
    from_status = TextField(null=True)  # NULL: the lead was created
    to_status = TextField()

    class Meta:
        table_name = "lead_status_change"


class WebhookEvent(BaseModel):
    """An event for SALESBOT_WEBHOOK_URL (store/events.py writes them, salesbot/webhooks.py sends them)."""

    event_id = TextField(unique=True)
    lead = ForeignKeyField(Lead, column_name="lead_id", null=True, on_delete="CASCADE")
    type = TextField()
    body = TextField()
    state = TextField(default="queued")  # queued | sent | failed
    attempts = IntegerField(default=0)
    error = TextField(null=True)
    not_before = DateTimeField()
    created_at = DateTimeField(default=utcnow)
    sent_at = DateTimeField(null=True)

    class Meta:
        table_name = "webhook_event"

"""The buttons the bot shows and the callback data they carry (Telegram allows 64 bytes of it).

The dialogue engine, the meeting reminders and the staff's meeting changes all offer the same
buttons, so they are built here once:

- `s:<minutes since the epoch>` a slot, `ok:<minutes>` the own time confirmed, `own` propose a time,
  `re` choose another;
- `mc:<meeting id>` «Подтверждаю», `mm:<id>` «Перенести», `mx:<id>` «Отменить», then `mxy:<id>` /
  `mxn:<id>` for «Да, отменить» / «Нет, оставить».
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from salesbot import texts
from salesbot.transport import Button, Keyboard

OWN = "own"
OTHER = "re"
CONFIRM, MOVE, CANCEL, CANCEL_YES, CANCEL_NO = "mc", "mm", "mx", "mxy", "mxn"
MEETING_ACTIONS = (CONFIRM, MOVE, CANCEL, CANCEL_YES, CANCEL_NO)
_MEETING_LABELS = {CONFIRM: texts.BUTTON_MEETING_CONFIRM, MOVE: texts.BUTTON_MEETING_MOVE,
                   CANCEL: texts.BUTTON_MEETING_CANCEL, CANCEL_YES: texts.BUTTON_CANCEL_YES,
                   CANCEL_NO: texts.BUTTON_CANCEL_NO}


def slot_data(prefix: str, moment: datetime) -> str:
    return f"{prefix}:{int(moment.timestamp()) // 60}"


def moment_of(data: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(data.split(":", 1)[1]) * 60, UTC)
    except (IndexError, ValueError, OverflowError):
        return None


def meeting_action(data: str) -> tuple[str, int] | None:
    """(`mc`|`mm`|`mx`|`mxy`|`mxn`, meeting id) of a meeting button, else None."""
    action, _, number = data.partition(":")
    if action in MEETING_ACTIONS and number.isdigit():
        return action, int(number)
    return None


def meeting_label(action: str) -> str:
    return _MEETING_LABELS[action]


def slots(starts: Iterable[datetime], tz: ZoneInfo, today: date | None = None) -> Keyboard:
    """A slot a row, then «Предложить своё время». With `today` (the live dialogue), today's and
    tomorrow's slots read «Сегодня, 17:00» / «Завтра, 10:00»; a keyboard queued by the sweep keeps
    the date (it may be delivered later)."""
    rows = [[Button(texts.slot_label(s.astimezone(tz), today), slot_data("s", s))] for s in starts]
    rows.append([Button(texts.BUTTON_OWN_TIME, OWN)])
    return rows


def confirm_time(moment: datetime) -> Keyboard:
    return [[Button(texts.BUTTON_CONFIRM, slot_data("ok", moment))], [Button(texts.BUTTON_OTHER, OTHER)]]


def meeting(meeting_id: int) -> Keyboard:
    """On the booking confirmation and on every reminder: confirm, move, cancel."""
    return [[Button(texts.BUTTON_MEETING_CONFIRM, f"{CONFIRM}:{meeting_id}")],
            [Button(texts.BUTTON_MEETING_MOVE, f"{MOVE}:{meeting_id}"),
             Button(texts.BUTTON_MEETING_CANCEL, f"{CANCEL}:{meeting_id}")]]


def cancel_question(meeting_id: int) -> Keyboard:
    return [[Button(texts.BUTTON_CANCEL_YES, f"{CANCEL_YES}:{meeting_id}"),
             Button(texts.BUTTON_CANCEL_NO, f"{CANCEL_NO}:{meeting_id}")]]

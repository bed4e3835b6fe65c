"""The staff inbox: a forum supergroup (SALESBOT_STAFF_CHAT) with one topic per lead, where staff see
every conversation as it happens and step in.

- inbox.py   the engine's view: mirroring lines into the topic, the takeover pause, the handoff
             (alerts, the repeat after 30 working minutes), the periodic end of takeovers;
- poster.py  the group's queue: topics opened (card first), posts paced under 20 a minute and
             merged per topic while they wait, deleted/closed topics, a group that takes no posts;
- staff.py   what staff do: write in a topic (the lead gets it), /note, /bot, the card's buttons,
             and the managers' private menu (/today, /hot).
Only telegram.py talks to Telegram; this package speaks through the outbox and the StaffTransport seam.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime

from salesbot.delivery import Outbox
from salesbot.inbox.inbox import Inbox, InboxConfig
from salesbot.inbox.poster import GroupPoster
from salesbot.inbox.staff import StaffDesk
from salesbot.time.slots import Calendar

__all__ = ["GroupPoster", "Inbox", "InboxConfig", "StaffDesk", "staff_side"]


def staff_side(inbox: Inbox | None, outbox: Outbox, calendar: Calendar, manager_ids: tuple[int, ...],
               now: Callable[[], datetime], resume: Callable[[int], Awaitable[None]]) -> tuple[Inbox, StaffDesk]:
    """The engine's staff side: the inbox given (serve's, with the staff group) or one without a group
    (managers are still staff, not leads), told how to answer a lead given back; and its desk."""
    inbox = inbox or Inbox(outbox, InboxConfig(calendar=calendar, manager_ids=manager_ids), now)
    inbox.resume = resume
    return inbox, StaffDesk(inbox, calendar, now)

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

from salesbot.inbox.inbox import Inbox, InboxConfig
from salesbot.inbox.poster import GroupPoster
from salesbot.inbox.staff import StaffDesk

__all__ = ["GroupPoster", "Inbox", "InboxConfig", "StaffDesk"]

"""Issue 23 in the engine: what the database refuses for a while is kept and written later, in order."""

import asyncio
import sqlite3

from salesbot import texts
from salesbot.claude.client import KeptRows
from salesbot.store import Message, Outbox
from tests.engine_fakes import make_engine, tg


def test_a_reply_the_database_refuses_is_kept_and_queued_once_it_takes_it(db, aio, salesbot_home):
    # Before: the StoreError of queueing the reply left the lead with nothing (not even the fallback,
    # which failed the same way) until the next restart.
    dialogue, llm, transport = make_engine(managers=())
    llm.gate = asyncio.Event()

    async def main():
        answering = asyncio.ensure_future(dialogue.handle(tg(text="Сколько стоит сайт?")))
        while not llm.calls:
            await asyncio.sleep(0)
        locker = sqlite3.connect(salesbot_home / "salesbot.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another process's long write, while Claude answers
        llm.gate.set()
        await answering
        during = (list(transport.sent), Outbox.select().count(), dialogue.voice.kept != [])
        locker.execute("ROLLBACK")
        locker.close()
        await dialogue.voice.writer
        return during

    sent, queued, kept = aio.run(main())
    assert (sent, queued, kept) == ([], 0, True)
    assert [s.text for s in transport.sent] == ["Понял вас!"] and texts.FALLBACK not in [s.text for s in transport.sent]
    assert Message.select().where(Message.unanswered == True).count() == 0  # noqa: E712


def test_a_ledger_row_the_database_refuses_is_written_with_the_next_call():
    written, refuse = [], [True]

    def ledger(row):
        if refuse.pop(0) if refuse else False:
            raise RuntimeError("database is locked")
        written.append(row["n"])

    kept = KeptRows(ledger)
    kept.add({"n": 1})  # refused: kept
    assert written == [] and len(kept.rows) == 1
    kept.add({"n": 2})
    assert written == [1, 2] and kept.rows == []

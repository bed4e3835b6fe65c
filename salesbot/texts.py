"""Every text the bot says to a lead or a manager, in one place (Russian), so they can be read,
edited and translated together. Functions take the values they need; nothing here reads state."""

from __future__ import annotations

import string
from datetime import date, datetime, timedelta

WEEKDAYS_SHORT = ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"]
MONTHS_SHORT = ["янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"]

# The business's own words (SALESBOT_TEXTS_FILE may replace these; see OVERRIDABLE below)
COMPANY = ""  # the company's name, e.g. «Пиксель»: the greeting then says «ассистент компании «Пиксель»»
CONSULTATION = "бесплатную консультацию {duration}"  # {duration}: «на час», from SALESBOT_SLOT_MINUTES
# {assistant}: «ассистент компании «Пиксель»» with a company name, «виртуальный ассистент» without one
# ({company} alone, « «Пиксель»» or nothing, stays for greetings written before it)
GREETING = (
    "Здравствуйте{name}! 👋 Я {assistant}. Расскажите, что вас интересует, — "
    "отвечу на вопросы и помогу записаться на {consultation}."
)
STOPPED = "Хорошо, больше не буду напоминать о себе. Если захотите вернуться к разговору — просто напишите."
PLEASE_TEXT = "Пожалуйста, напишите ваш вопрос текстом — так я смогу ответить быстрее. 🙂"
ONE_MOMENT = "Минутку, отвечу на всё сразу."
FALLBACK = (
    "Извините, не могу ответить прямо сейчас. Ваше сообщение сохранено — "
    "мы вернёмся к вам совсем скоро."
)
# The monthly Claude budget is spent: the lead still hears from us, and a manager answers by hand
BUDGET_PAUSED = (
    "Спасибо за сообщение! Сейчас ответить сразу не получается — менеджер прочитает его "
    "и ответит вам лично в ближайшее время."
)

CHOOSE_SLOT = "Выберите удобное время для встречи:"
NO_SLOTS = "Свободного времени для записи сейчас нет — предложите, пожалуйста, своё."
BUTTON_OWN_TIME = "Предложить своё время"
BUTTON_CONFIRM = "Да, записать"
BUTTON_OTHER = "Выбрать другое время"

ASK_OWN_TIME = (
    "Напишите, когда вам удобно, например: «в среду в 11:00» или «завтра в 15:00». "
    "Чтобы вернуться к разговору, напишите «отмена»."
)
NOT_UNDERSTOOD = ("Не совсем понял, на когда вас записать. Напишите день и время одной фразой, например: "
                  "«в четверг в 15:00» или «завтра в 11»." )
NEED_TIME = "Укажите, пожалуйста, и время — например, «завтра в 15:00»."
CANCELLED = "Хорошо, отменил выбор времени. Если будут вопросы — пишите!"
NOTHING_TO_CANCEL = "Отменять нечего: сейчас мы не выбираем время встречи. Если будут вопросы — пишите!"
TIME_PASSED = "Это время уже прошло."
TOO_SOON = "Так скоро не успеем подготовиться."
OUTSIDE_HOURS = "В это время мы не работаем: встречи возможны {days}, с {start} до {end}."
TAKEN = "Это время уже занято."
BUSY = "Это время уже занято."  # an event in the owner's own calendar (SALESBOT_BUSY_ICS)
DAY_OFF = "В этот день мы не работаем."  # a public holiday or one of the business's days off
BREAK = "В это время у нас перерыв, с {start} до {end}."
OUTSIDE_SCHEDULE = "В это время мы не работаем. Встречи возможны {schedule}."
FIRST_FREE_DAY = "Ближайший свободный день — {day}."
STALE_BUTTON = "Это предложение уже неактуально."
STALE_TOAST = "Эти кнопки уже неактуальны — выберите в последнем сообщении."  # a press on an old keyboard
NEAREST_SLOTS = "Вот ближайшее свободное время:"

# How a lead's non-text message is stored in the conversation (and shown to Claude and staff)
MEDIA_LABELS = {"sticker": "[стикер]", "voice": "[голосовое сообщение]", "photo": "[фото]", "video": "[видео]",
                "document": "[файл]"}
MEDIA_OTHER = "[вложение]"
EMPTY_MESSAGE = "[пустое сообщение]"
CHAT_GUEST = "Гость"  # the name of a `salesbot chat` lead started without --lead

CANCEL_WORDS = {"отмена", "отменить", "/cancel", "cancel", "стоп запись"}
# Typed instead of pressing «Да, записать» while a time waits for confirmation
CONFIRM_WORDS = {"да", "ага", "ок", "ok", "окей", "верно", "правильно", "подтверждаю", "да, записать", "записать",
                 "да записать", "yes", "давайте", "да, верно", "да, всё верно", "всё верно"}


_slot_minutes = 60  # SALESBOT_SLOT_MINUTES, set by configure()


def duration(minutes: int) -> str:
    """«на час», «на полтора часа», «на 2 часа», «на 45 минут»."""
    if minutes == 60:
        return "на час"
    if minutes == 90:
        return "на полтора часа"
    if minutes % 60 == 0:
        return f"на {minutes // 60} {_plural(minutes // 60, 'час', 'часа', 'часов')}"
    return f"на {minutes} {_plural(minutes, 'минуту', 'минуты', 'минут')}"


def _plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    return few if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14 else many


def greeting(first_name: str | None) -> str:
    # «Здравствуйте, Гость!» reads oddly: the name a `chat` lead gets by default is not a name
    name = f", {first_name}" if first_name and first_name != CHAT_GUEST else ""
    return GREETING.format(name=name, company=f" «{COMPANY}»" if COMPANY else "",
                           assistant=f"ассистент компании «{COMPANY}»" if COMPANY else "виртуальный ассистент",
                           consultation=CONSULTATION.format(duration=duration(_slot_minutes)))


def slot_label(moment: datetime, today: date | None = None) -> str:
    """`Ср, 24 дек, 11:00`, or `Сегодня, 11:00` / `Завтра, 11:00` when `today` is given: short
    enough for a Telegram button."""
    if today is not None and moment.date() in (today, today + timedelta(days=1)):
        return f"{'Сегодня' if moment.date() == today else 'Завтра'}, {moment:%H:%M}"
    year = f" {moment.year}" if today is not None and moment.year != today.year else ""
    return (f"{WEEKDAYS_SHORT[moment.weekday()]}, {moment.day} {MONTHS_SHORT[moment.month - 1]}{year}, "
            f"{moment:%H:%M}")


_WEEKDAYS_ON = ["в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу", "в воскресенье"]
WEEKDAYS = ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"]
MONTHS_GENITIVE = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря"]


def describe(moment: datetime) -> str:
    """`среда, 24 декабря 2025, 11:00 (Europe/Moscow)`: a moment in full, for Claude and the operator."""
    zone = getattr(moment.tzinfo, "key", str(moment.tzinfo))
    return (f"{WEEKDAYS[moment.weekday()]}, {moment.day} {MONTHS_GENITIVE[moment.month - 1]} {moment.year}, "
            f"{moment:%H:%M} ({zone})")


def day_phrase(day: date, today: date) -> str:
    """«сегодня», «завтра, 27 ноября», «в четверг, 26 ноября» (with the year only when it is not this one)."""
    if day == today:
        return "сегодня"
    year = f" {day.year} года" if day.year != today.year else ""
    on = "завтра" if day == today + timedelta(days=1) else _WEEKDAYS_ON[day.weekday()]
    return f"{on}, {day.day} {MONTHS_GENITIVE[day.month - 1]}{year}"


def zone_phrase(moment: datetime) -> str:
    """«по московскому времени» for Moscow, else the UTC offset («UTC+5», «UTC−3:30»): a lead does
    not read IANA names like Asia/Yekaterinburg."""
    if getattr(moment.tzinfo, "key", None) in ("Europe/Moscow", "W-SU"):
        return "по московскому времени"
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "−"
    hours, rest = divmod(abs(minutes), 60)
    return f"(UTC{sign}{hours}{f':{rest:02d}' if rest else ''})"


def meeting_time(moment: datetime, today: date) -> str:
    """«в четверг, 26 ноября, в 11:00 по московскому времени»: a meeting's time as a lead reads it."""
    return f"{day_phrase(moment.date(), today)}, в {moment:%H:%M} {zone_phrase(moment)}"


CONFIRM_OWN_TIME = "Правильно понял: {when}?"
BOOKED = "Отлично, записал вас на встречу: {when}. Мы свяжемся с вами в назначенное время. До встречи!"
REBOOKED = "Готово, перенёс встречу: {when}. До встречи!"


def confirm_own_time(when: str) -> str:
    return CONFIRM_OWN_TIME.format(when=when)


def booked(when: str) -> str:
    return BOOKED.format(when=when)


def rebooked(when: str) -> str:
    return REBOOKED.format(when=when)


def outside_hours(days: str, start: str, end: str) -> str:
    return OUTSIDE_HOURS.format(days=days, start=start, end=end)


def outside_schedule(parts: list[tuple[str, str, str]]) -> str:
    """Hours that differ by day: «… встречи возможны с понедельника по четверг, с 10:00 до 19:00;
    по пятницам, с 10:00 до 16:00.» from (days, start, end) parts."""
    return OUTSIDE_SCHEDULE.format(schedule="; ".join(f"{days}, с {start} до {end}" for days, start, end in parts))


def in_break(start: str, end: str) -> str:
    return BREAK.format(start=start, end=end)


def first_free_day(day: str) -> str:
    """When the coming week has nothing free: «Ближайший свободный день — в понедельник, 19 января.»"""
    return FIRST_FREE_DAY.format(day=day)


_DAYS_FROM = ["понедельника", "вторника", "среды", "четверга", "пятницы", "субботы", "воскресенья"]
_DAYS_TO = ["понедельник", "вторник", "среду", "четверг", "пятницу", "субботу", "воскресенье"]
_DAYS_EACH = ["понедельникам", "вторникам", "средам", "четвергам", "пятницам", "субботам", "воскресеньям"]


def work_days_text(days: frozenset[int]) -> str:
    """`с понедельника по пятницу`, or `по понедельникам, средам` when the days have gaps."""
    ordered = sorted(days)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"с {_DAYS_FROM[ordered[0]]} по {_DAYS_TO[ordered[-1]]}"
    return "по " + ", ".join(_DAYS_EACH[d] for d in ordered)


def unknown_button(data: str) -> str:
    return f"[кнопка {data}]"


QUOTE_CHARS = 300  # a lead's message quoted to managers is cut here (a notice must stay under 4096)


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _lead_for_managers(first_name: str | None, lead_id: int, username: str | None) -> str:
    return (first_name or f"лид {lead_id}") + (f" (@{username})" if username else "")


SUMMARY_CHARS = 1500  # what the model learned, as a manager's notice quotes it


def manager_booking(first_name: str | None, lead_id: int, username: str | None, when: str, source: str,
                    last_messages: list[str], summary: str | None = None) -> str:
    """A new meeting for the managers: who, when, and what the model learned of the lead (or, while it
    has learned nothing yet, the lead's last messages)."""
    who = _lead_for_managers(first_name, lead_id, username)
    how = "своё время" if source == "custom" else "слот"
    lines = [f"📅 Новая встреча: {who}", f"Когда: {when} ({how})"]
    if summary:
        lines.append(f"Что известно о клиенте: {quote(summary, SUMMARY_CHARS)}")
    elif last_messages:
        lines.append("Последние сообщения клиента:")
        lines += [f"— {quote(text)}" for text in last_messages]
    return "\n".join(lines)


def manager_unanswered(first_name: str | None, lead_id: int, username: str | None, text: str) -> str:
    who = _lead_for_managers(first_name, lead_id, username)
    return f"⚠️ Claude недоступен, клиент {who} ждёт ответа:\n— {quote(text)}"


def manager_budget(level: int, month: str, spent_usd: float, limit_usd: float) -> str:
    """The monthly Claude budget (SALESBOT_MONTHLY_BUDGET_USD): 80% reached, or all of it."""
    figures = f"${spent_usd:,.2f} из ${limit_usd:,.2f} за {month}"
    if level >= 100:
        return (f"⛔ Месячный бюджет на Claude исчерпан ({figures}). До конца месяца бот не отвечает клиентам "
                "сам: каждому приходит вежливое «ответим позже», а их сообщения ждут ответа менеджера. "
                "Чтобы бот снова отвечал, увеличьте бюджет.")
    return f"⚠️ Потрачено {level}% месячного бюджета на Claude ({figures})."


def manager_undelivered(first_name: str | None, lead_id: int, username: str | None, reason: str) -> str:
    who = _lead_for_managers(first_name, lead_id, username)
    return (f"⚠️ Сообщение клиенту {who} не доставлено ({reason}). Посмотрите: salesbot leads show {lead_id}")


# Reminders (the follow-up sweep): in the bot's register («Здравствуйте, Анна!», «вы»), helpful, one
# clear question, short; never a reproach for not answering. A lead without a first name gets
# «Здравствуйте!». Hot leads (they wanted to buy, then went quiet) get the meeting offer with slot
# buttons instead.
FOLLOW_UP_1 = (
    "{hello} Возвращаюсь к вашему вопросу — он ещё актуален? "
    "Если да, напишите пару слов, и я подскажу, с чего начать."
)
FOLLOW_UP_2 = (
    "{hello} Напишу в последний раз, чтобы не отвлекать: могу ли я чем-то помочь? "
    "Если вопрос ещё актуален, просто ответьте на это сообщение."
)
HOT_FOLLOW_UP_1 = (
    "{hello} Вы хотели записаться на встречу. Когда вам удобно? "
    "Выберите время ниже или предложите своё."
)
HOT_FOLLOW_UP_2 = (
    "{hello} Напомню в последний раз: запись на встречу открыта. Подобрать вам время? "
    "Выберите ниже или напишите, когда удобно."
)


HELLO = "Здравствуйте, {name}!"
HELLO_NO_NAME = "Здравствуйте!"  # a lead Telegram gave no first name


def hello(first_name: str | None) -> str:
    return HELLO.format(name=first_name) if first_name else HELLO_NO_NAME


def follow_up(step: int, first_name: str | None) -> str:
    return (FOLLOW_UP_1 if step == 1 else FOLLOW_UP_2).format(hello=hello(first_name))


def hot_follow_up(step: int, first_name: str | None) -> str:
    """A hot lead's reminder; it goes out with the free slots as buttons."""
    return (HOT_FOLLOW_UP_1 if step == 1 else HOT_FOLLOW_UP_2).format(hello=hello(first_name))


# --- meetings: confirm, move, cancel, reminders before them, staff changes ------------------------------

BUTTON_MEETING_CONFIRM = "Подтверждаю"
BUTTON_MEETING_MOVE = "Перенести"
BUTTON_MEETING_CANCEL = "Отменить"
BUTTON_CANCEL_YES = "Да, отменить"
BUTTON_CANCEL_NO = "Нет, оставить"

CHOOSE_NEW_TIME = "Выберите новое время — или предложите своё:"
ANOTHER_TIME = "Хорошо, напишите другое время — или выберите из свободного:"
MEETING_GONE = "Эта встреча уже отменена или перенесена."
NO_MEETING_TO_CHANGE = "У вас сейчас нет назначенной встречи. Выберите время, если хотите встретиться:"
# Typed instead of «Да, отменить» / «Нет, оставить» when asked whether to cancel the meeting
CANCEL_YES_WORDS = CONFIRM_WORDS | {"отменить", "отмените", "да, отменить", "да отменить", "отменяйте", "отменяем"}
CANCEL_NO_WORDS = {"нет", "не надо", "не отменять", "нет, оставить", "нет оставить", "оставить", "оставьте",
                   "оставляем", "no"}
# Typed to «Правильно понял: …?»: not that time
DECLINE_WORDS = {"нет", "не", "неправильно", "неверно", "не так", "нет, не так", "нет, неправильно", "нет, другое",
                 "другое время", "no"}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def days_word(n: int) -> str:
    """`1 день`, `3 дня`, `60 дней`."""
    return f"{n} {_plural(n, 'день', 'дня', 'дней')}"


TOO_FAR = "Так далеко вперёд мы не записываем: не дальше чем на {days}."  # {days}: «60 дней»
ENDS_LATE = "Не успеем: встреча должна закончиться до {closes}."
PERIOD_SLOTS = "Свободное время — {day}, с {start} до {end}:"
PERIOD_FULL = "{day}, с {start} до {end}, свободного времени нет. Вот ближайшее:"  # {day}: «Завтра, 24 декабря»
DAYS_SLOTS = "Свободное время {dates}{hours}:"  # {dates}: «с 29 декабря по 4 января»; {hours}: «, с 14:00 до 19:00»
DAYS_FULL = "{dates} свободного времени нет. Вот ближайшее:"  # {dates}: «С 29 декабря по 4 января»


def too_far(days: int) -> str:
    return TOO_FAR.format(days=days_word(days))


def ends_late(closes: str) -> str:
    return ENDS_LATE.format(closes=closes)


def period_slots(day: str, start: str, end: str) -> str:
    return PERIOD_SLOTS.format(day=day, start=start, end=end)


def period_full(day: str, start: str, end: str) -> str:
    return PERIOD_FULL.format(day=_cap(day), start=start, end=end)


def _dates(first: date, last: date) -> str:
    """«с 29 декабря по 4 января»."""
    return f"с {first.day} {MONTHS_GENITIVE[first.month - 1]} по {last.day} {MONTHS_GENITIVE[last.month - 1]}"


def days_slots(first: date, last: date, start: str, end: str, whole_day: bool = False) -> str:
    """Several days asked for («на следующей неделе», «на следующей неделе после обеда»)."""
    return DAYS_SLOTS.format(dates=_dates(first, last), hours="" if whole_day else f", с {start} до {end}")


def days_full(first: date, last: date, start: str, end: str) -> str:
    return DAYS_FULL.format(dates=_cap(_dates(first, last)))


MEETING_CONFIRMED = "Спасибо, что подтвердили! Ждём вас: {when}."
ASK_CANCEL = "Отменить встречу — {when}?"
MEETING_CANCELLED = "Встреча отменена ({when}). Если захотите выбрать другое время — просто напишите."
MEETING_KEPT = "Хорошо, встреча остаётся: {when}. До встречи!"
# Before the meeting (24 h, 2 h…): the time, and the three buttons to answer with; {hello}: «Здравствуйте, Анна!»
MEETING_REMINDER = "{hello} Напоминаю о нашей встрече: {when}. Всё в силе? Если планы изменились — её можно перенести."
NO_SHOW_OFFER = ("{sorry}, что не получилось встретиться ({when}). Давайте подберём другое время — "
                 "выберите удобное:")  # {sorry}: «Анна, жаль», or «Жаль» without a name
STAFF_CANCELLED = ("К сожалению, нам пришлось отменить встречу ({when}).{reason} Приносим извинения! "
                   "Выберите, пожалуйста, другое время:")  # {reason}: « Причина: …» when staff gave one
STAFF_MOVED = "Мы перенесли вашу встречу: вместо «{old}» — {new}. Если это время неудобно, нажмите «Перенести»."


def meeting_confirmed(when: str) -> str:
    return MEETING_CONFIRMED.format(when=when)


def ask_cancel(when: str) -> str:
    return ASK_CANCEL.format(when=when)


def meeting_cancelled(when: str) -> str:
    return MEETING_CANCELLED.format(when=when)


def meeting_kept(when: str) -> str:
    return MEETING_KEPT.format(when=when)


def meeting_reminder(first_name: str | None, when: str) -> str:
    return MEETING_REMINDER.format(hello=hello(first_name), when=when)


def no_show_offer(first_name: str | None, when: str) -> str:
    return NO_SHOW_OFFER.format(sorry=f"{first_name}, жаль" if first_name else "Жаль", when=when)


def staff_cancelled(when: str, reason: str | None) -> str:
    return STAFF_CANCELLED.format(when=when, reason=f" Причина: {quote(reason)}." if reason else "")


def staff_moved(old: str, new: str) -> str:
    return STAFF_MOVED.format(old=old, new=new)


def manager_meeting_confirmed(first_name: str | None, lead_id: int, username: str | None, when: str) -> str:
    return f"✅ Клиент подтвердил встречу: {_lead_for_managers(first_name, lead_id, username)}\nКогда: {when}"


def manager_meeting_moved(first_name: str | None, lead_id: int, username: str | None, old: str, new: str,
                          by_staff: bool = False) -> str:
    who = _lead_for_managers(first_name, lead_id, username)
    head = "🔁 Встреча перенесена (из терминала)" if by_staff else "🔁 Клиент перенёс встречу"
    return f"{head}: {who}\nБыло: {old}\nСтало: {new}"


def manager_meeting_cancelled(first_name: str | None, lead_id: int, username: str | None, when: str,
                              by_staff: bool = False, reason: str | None = None) -> str:
    who = _lead_for_managers(first_name, lead_id, username)
    head = "❌ Встреча отменена (из терминала)" if by_staff else "❌ Клиент отменил встречу"
    return f"{head}: {who}\nКогда: {when}" + (f"\nПричина: {quote(reason)}" if reason else "")


# --- the business's own words: SALESBOT_TEXTS_FILE ----------------------------------------------
# A TOML file of `key = "text"` lines; each key replaces the text of that name (placeholders in
# braces as in the packaged text). Issue-specific texts may join this map.
# Every text a lead reads is here as a constant and may be replaced (`booked = "Записали вас на приём: {when}."`);
# the key is the constant's name in lower case. Texts for managers and the stored labels of media stay packaged.
_NOT_FOR_LEADS = {"MEDIA_OTHER", "EMPTY_MESSAGE"}
OVERRIDABLE = {name.lower(): name for name, value in list(globals().items())
               if name.isupper() and isinstance(value, str) and name not in _NOT_FOR_LEADS}
_PACKAGED = {attr: globals()[attr] for attr in OVERRIDABLE.values()}


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


_STILL_TAKEN = {"greeting": {"company"}}  # placeholders the packaged text dropped that overrides may still use


def _allowed(key: str) -> set[str]:
    return _fields(_PACKAGED[OVERRIDABLE[key]]) | _STILL_TAKEN.get(key, set())


def override_problems(values: dict) -> list[str]:
    """What is wrong with a set of overrides: unknown keys (with the known ones), non-text values,
    placeholders the packaged text does not have, blank texts."""
    problems = []
    for key, value in values.items():
        if key not in OVERRIDABLE:
            import difflib

            close = difflib.get_close_matches(key, list(OVERRIDABLE), n=1, cutoff=0.6)
            problems.append(f"unknown key {key!r}" + (f" (did you mean {close[0]}?)" if close else "")
                            + "; the keys are the names of salesbot/texts.py's texts in lower case (see the README)")
        elif not isinstance(value, str):
            problems.append(f"{key}: expected a text in quotes")
        elif key != "company" and not value.strip():
            problems.append(f"{key}: empty")
        else:
            try:
                unknown = _fields(value) - _allowed(key)
            except ValueError as exc:
                problems.append(f"{key}: {exc} (write {{{{ and }}}} for literal braces)")
                continue
            if unknown:
                allowed = ", ".join("{" + f + "}" for f in sorted(_allowed(key))) or "none"
                problems.append(f"{key}: unknown placeholder {{{sorted(unknown)[0]}}} (allowed: {allowed})")
    return problems


def configure(overrides: dict[str, str] | None = None, slot_minutes: int = 60) -> None:
    """The texts this process speaks: the packaged ones, replaced by `overrides` (checked first with
    override_problems), and the meeting length the consultation mentions."""
    global _slot_minutes
    _slot_minutes = slot_minutes
    for key, attr in OVERRIDABLE.items():
        globals()[attr] = (overrides or {}).get(key, _PACKAGED[attr])


# --- the staff inbox (salesbot/inbox): the group's topics, takeover, handoff, staff in private ------
# Staff read these on a phone: short lines, no terminal commands.

HANDOFF_SOON = "Передаю ваш вопрос менеджеру — он ответит здесь же в ближайшее время."
HANDOFF_LATER = "Передаю ваш вопрос менеджеру. Сейчас мы не работаем — менеджер ответит здесь же {when}."
BOT_BACK = "Снова на связи бот-ассистент. Если остались вопросы — пишите!"  # not sent: for the topic only
LEAD_LINE = "👤 {text}"  # the lead's words in the topic
BOT_LINE = "🤖 {text}"  # the bot's words to the lead, in the topic
TERMINAL_LINE = "💬 Менеджер (из терминала): {text}"
TERMINAL_STAFF = "менеджер (из терминала)"  # who took over or gave back, from `salesbot leads …`
BUTTONS_LINE = "   [кнопки: {labels}]"
NOTE_SAVED = "📝 Заметка сохранена (клиент её не видит)."
STAFF_BUTTON_TAKE = "✋ Взять диалог"
STAFF_BUTTON_RELEASE = "🤖 Вернуть боту"
STAFF_BUTTON_COLD = "❄️ Холодный"
STAFF_BUTTON_DONE = "✅ Состоялась"
STAFF_BUTTON_NO_SHOW = "🚫 Не пришёл"
STAFF_HELP = (
    "Вы менеджер: я не веду с вами диалог как с клиентом.\n"
    "/today — встречи на сегодня\n"
    "/hot — горячие клиенты без встречи\n"
    "Сюда приходят уведомления о записях и просьбах позвать человека."
)
STAFF_NO_MEETINGS = "Сегодня встреч нет."
STAFF_NO_HOT = "Горячих клиентов без встречи нет."
STAFF_TOPIC_HELP = ("Это тема клиента. Напишите сообщение — бот передаст его клиенту и замолчит. "
                    "/note текст — заметка для команды, /bot — вернуть диалог боту.")
STAFF_UNKNOWN_TOPIC = "Не нашёл клиента этой темы: писать клиентам можно только в их темах."
STAFF_MEDIA_UNSUPPORTED = "Пока передаю клиенту только текст — опишите словами или пришлите ссылку."


def lead_topic_title(first_name: str | None, username: str | None, lead_id: int) -> str:
    # Telegram caps a topic title at 128 characters (api/forum)
    return (_lead_for_managers(first_name, lead_id, username) + f" · #{lead_id}")[:128]


def lead_card(first_name: str | None, username: str | None, lead_id: int, status: str, source: str | None,
              meeting: str | None, summary: str | None, takeover: bool) -> str:
    lines = [f"🪪 {_lead_for_managers(first_name, lead_id, username)} · #{lead_id}",
             f"Статус: {STATUS_WORDS.get(status, status)}" + (" · ведёт менеджер" if takeover else "")]
    if source:
        lines.append(f"Источник: {source}")
    lines.append(f"Встреча: {meeting}" if meeting else "Встречи нет")
    if summary:
        lines.append(f"Кратко: {quote(summary)}")
    return "\n".join(lines)


STATUS_WORDS = {"new": "новый", "warm": "тёплый", "hot": "горячий", "cold": "холодный", "lost": "отказ"}


def handoff_later(when: str) -> str:
    return HANDOFF_LATER.format(when=when)


def handoff_alert(mentions: str, first_name: str | None, lead_id: int, username: str | None, reason: str,
                  repeat: bool = False) -> str:
    who = _lead_for_managers(first_name, lead_id, username)
    head = "🔔 Напоминаю: клиент всё ещё ждёт человека" if repeat else "🔔 Клиент просит человека"
    return f"{head}: {who}\n{quote(reason)}" + (f"\n{mentions}" if mentions else "")


def media_alert(first_name: str | None, lead_id: int, username: str | None, label: str) -> str:
    who = _lead_for_managers(first_name, lead_id, username)
    return f"📎 {who} прислал(а) {label} — бот не может это прочитать, посмотрите сами."


def taken_over(by: str) -> str:
    return f"✋ Диалог ведёт {by}: бот молчит, пока вы не вернёте его (/bot) или не пройдёт время."


def released(by: str, expired: bool = False) -> str:
    return "🤖 Время ручного режима истекло: диалог снова ведёт бот." if expired else \
        f"🤖 {by[:1].upper()}{by[1:]} вернул(а) диалог боту."


def undelivered_in_topic(reason: str) -> str:
    return f"⚠️ Не доставлено клиенту: {reason}. Похоже, клиент заблокировал бота или удалил аккаунт."


def staff_meeting_line(when: str, first_name: str | None, lead_id: int, username: str | None) -> str:
    return f"{when} — {_lead_for_managers(first_name, lead_id, username)}"


def marked_cold(by: str) -> str:
    return f"❄️ {by} отметил(а) клиента холодным: напоминаний не будет."
MENTION = "менеджер"  # how a mentioned manager is named in a staff alert (the mention notifies them)

import itertools
import json
import logging

from salesbot import llm
from salesbot.config import PACKAGED_PROMPT
from salesbot.pricing import estimate_tokens, min_cacheable_tokens
from scripts.fake_claude import CacheBiller, Reply

PROMPT = PACKAGED_PROMPT.read_text(encoding="utf-8")


def dialogue(client, history, context="Служебно: сегодня вторник"):
    messages = llm.conversation_messages(history, context)
    return client.run(client.complete(purpose="dialogue", system=client.cached_system(PROMPT, client.model),
                                       messages=messages))


def test_system_prompt_is_cached_and_byte_identical_across_turns(claude, fake_api):
    history = [("user", "Здравствуйте")]
    for turn in range(4):
        dialogue(claude, history, context=f"Служебно: MARK{turn}, время меняется")
        history += [("assistant", f"Ответ {turn}"), ("user", f"Вопрос {turn}")]
    systems = [json.dumps(body["system"], ensure_ascii=False) for body in fake_api.bodies]
    assert len(set(systems)) == 1
    assert fake_api.bodies[0]["system"] == [{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}]
    for body in fake_api.bodies:  # nothing per-turn leaks into the cached prefix
        assert "MARK" not in systems[0]
        assert "MARK" in body["messages"][-1]["content"][-1]["text"]


def breakpoints(body):
    marks = [("system", i) for i, b in enumerate(body["system"]) if "cache_control" in b]
    for m, message in enumerate(body["messages"]):
        marks += [(m, i) for i, b in enumerate(message["content"]) if "cache_control" in b]
    return marks


def test_history_breakpoint_is_on_the_last_turn_before_the_new_message(claude, fake_api):
    history = [("user", "Здравствуйте"), ("assistant", "Добрый день!"), ("user", "Сколько стоит сайт?"),
               ("assistant", "От 120 000 ₽."), ("user", "А магазин?")]
    dialogue(claude, history)
    body = fake_api.bodies[0]
    assert breakpoints(body) == [("system", 0), (3, 0)]
    assert body["messages"][3] == {"role": "assistant", "content": [
        {"type": "text", "text": "От 120 000 ₽.", "cache_control": {"type": "ephemeral"}}]}
    assert len(breakpoints(body)) <= 4


def test_turn_n_reads_turns_before_it_from_cache(fake_api, claude):
    """With documented billing, each new turn reads all earlier turns from the cache."""
    fake_api.billing = CacheBiller(min_tokens=min_cacheable_tokens(claude.model))
    history = [("user", "Здравствуйте, нужен сайт для кафе")]
    reads = []
    for turn in range(5):
        fake_api.enqueue(Reply(f"Ответ номер {turn}: расскажите подробнее о кафе и сроках."))
        result = dialogue(claude, history, context=f"Служебно: {turn}")
        reads.append(result.usage.cache_read_input_tokens)
        history += [("assistant", result.text), ("user", f"Вопрос {turn}: а сколько это стоит?")]
    assert reads[0] == 0
    assert all(later > earlier for earlier, later in itertools.pairwise(reads[1:]))
    assert reads[1] >= estimate_tokens(PROMPT)


def test_consecutive_messages_of_one_role_merge_deterministically():
    history = [("user", "раз"), ("user", "два"), ("assistant", "а"), ("assistant", "б"), ("user", "три")]
    first = llm.conversation_messages(history, None)
    assert [m["role"] for m in first] == ["user", "assistant", "user"]
    assert [b["text"] for b in first[0]["content"]] == ["раз", "два"]
    assert first == llm.conversation_messages(history, None)


def test_window_start_moves_in_steps_so_the_prefix_survives():
    from salesbot.conversation import window_start

    assert [window_start(total, 30) for total in (10, 30)] == [0, 0]
    starts = [window_start(total, 30) for total in range(31, 61)]
    assert all(total - start <= 30 for total, start in zip(range(31, 61), starts, strict=True))
    assert sorted(set(starts)) == [15, 30]  # 30 more messages, the start moved twice, by half the cap


def test_a_short_prompt_warns_once(claude, fake_api, caplog):
    with caplog.at_level(logging.WARNING, logger="salesbot.llm"):
        for _ in range(3):
            claude.run(claude.complete(purpose="t", system=claude.cached_system("Ты бот.", claude.model),
                                        messages=[{"role": "user", "content": "Привет"}]))
    assert caplog.text.count("prompt caching will do nothing until it is longer") == 1
    assert caplog.text.count("neither wrote nor read the prompt cache") == 1


def test_the_packaged_prompt_is_long_enough_to_cache_on_the_default_model(claude, caplog):
    with caplog.at_level(logging.WARNING, logger="salesbot.llm"):
        claude.cached_system(PROMPT, "claude-sonnet-5-5")
    assert "below" not in caplog.text
    assert estimate_tokens(PROMPT) >= 2 * min_cacheable_tokens("claude-sonnet-5-5")

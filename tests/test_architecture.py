"""The house's rules as tests: no import cycle, contracts that bite, one writer per table, classes a
reader can hold in their head, and models that agree with what the migrations build."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from salesbot import store

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "salesbot"
MAX_CLASS_LINES = 250


def test_no_import_cycle_between_modules():
    """Top-level, function-level (lazy) and TYPE_CHECKING imports all count."""
    graph = grimp.build_graph("salesbot", exclude_type_checking_imports=False, cache_dir=None)
    modules = graph.modules
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in modules} for m in modules}
    # a package's __init__ re-exporting its own modules is not a cycle of the code's design: a module
    # importing its parent package reaches the parent's __init__, which is fine while __init__ does
    # not import that module back (checked below like any other edge)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)
    assert cycles == [], "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("module, line", [
    ("salesbot/dialogue/engine.py", "import telethon"),  # only telegram.py talks to Telegram
    ("salesbot/store/leads.py", "import anthropic"),  # only the Claude client
    ("salesbot/time/slots.py", "from rich.console import Console"),  # the core never prints
    ("salesbot/store/queries.py", "from salesbot.dialogue import engine"),  # the store is below the engine
    ("salesbot/dialogue/booking.py", "def _x():\n    from salesbot import terminal"),  # lazy imports count
])
def test_the_contracts_fail_on_a_forbidden_import(tmp_path, module, line):
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "salesbot", copy / "salesbot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    lint = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                                  "sys.exit(c())", "--no-cache"]
    clean = subprocess.run(lint, cwd=copy, capture_output=True, text=True, env={"PYTHONPATH": str(copy)})
    assert clean.returncode == 0, clean.stdout
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    broken = subprocess.run(lint, cwd=copy, capture_output=True, text=True, env={"PYTHONPATH": str(copy)})
    assert broken.returncode == 1 and "BROKEN" in broken.stdout, broken.stdout


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_class_over_250_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long.append(f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


WRITE_SQL = re.compile(r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.IGNORECASE)
PEEWEE_WRITE = re.compile(r"\b(Lead|Message|Meeting|MeetingReminder|Outbox|LlmCall)\.(create|insert|insert_many|update"
                          r"|delete|replace|bulk_create|bulk_update)\(")
MODEL_TABLES = {"Lead": "lead", "Message": "message", "Meeting": "meeting", "MeetingReminder": "meeting_reminder",
                "Outbox": "outbox", "LlmCall": "llm_call"}
WRITERS = {"lead": "salesbot/store/leads.py", "message": "salesbot/store/leads.py",
           "meeting": "salesbot/store/leads.py", "outbox": "salesbot/store/outbox.py",
           "llm_call": "salesbot/store/ledger.py", "lead_status_change": "salesbot/store/leads.py",
           "webhook_event": "salesbot/store/events.py", "budget_alert": "salesbot/store/budget.py"}


def test_each_table_has_one_writing_module():
    writers: dict[str, set[str]] = {}
    for path in _sources():
        if path.name == "migrations.py":
            continue  # the schema itself (and its backfills)
        text = path.read_text()
        for table in WRITE_SQL.findall(text):
            writers.setdefault(table.lower(), set()).add(str(path.relative_to(ROOT)))
        for model, _ in PEEWEE_WRITE.findall(text):
            writers.setdefault(MODEL_TABLES[model], set()).add(str(path.relative_to(ROOT)))
    for table, module in WRITERS.items():
        assert writers.get(table) == {module}, (table, writers.get(table))
    shared = {table: found for table, found in writers.items() if len(found) > 1}
    assert shared == {}


def test_the_migrated_schema_and_the_models_agree(tmp_path):
    database = store.open_database(tmp_path / "schema.db")
    for model in (store.Lead, store.Message, store.Meeting, store.MeetingReminder, store.Outbox, store.LlmCall,
                  store.LeadStatusChange, store.WebhookEvent):
        table = model._meta.table_name
        columns = {row[1]: row for row in database.execute_sql(f"PRAGMA table_info({table})").fetchall()}
        fields = {field.column_name: field for field in model._meta.sorted_fields}
        assert set(fields) == set(columns), (table, set(fields) ^ set(columns))
        for name, field in fields.items():
            _, _, _, notnull, _, pk = columns[name]
            if pk:
                continue
            assert bool(notnull) == (not field.null), (table, name, "NOT NULL differs")
        foreign = {row[3]: row[2] for row in database.execute_sql(f"PRAGMA foreign_key_list({table})").fetchall()}
        for name, field in fields.items():
            if hasattr(field, "rel_model"):
                assert foreign.get(name) == field.rel_model._meta.table_name, (table, name)

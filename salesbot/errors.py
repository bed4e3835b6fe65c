"""The errors the core raises. The CLI turns any SalesbotError into one red line and exit 1."""


class SalesbotError(Exception):
    """A problem the operator can act on; its message is shown as is, so it must be clear and safe."""

    exit_code = 1


class ConfigError(SalesbotError):
    """A setting is missing or malformed."""


CONFIG_EXIT = 78  # EX_CONFIG (sysexits.h)


class ServeConfigError(ConfigError):
    """A setting stops `serve` (missing, malformed, or the Claude key rejected): restarting cannot fix
    it, so serve exits with its own code, which the systemd unit does not restart on."""

    exit_code = CONFIG_EXIT


class StoreError(SalesbotError):
    """The database cannot be opened, is not a database, or is from a newer salesbot."""


class NotFoundError(SalesbotError):
    """A lead, meeting or other record the operator named does not exist."""


class LLMUnavailable(SalesbotError):
    """Claude could not be reached or answered unusably after all attempts."""


class BudgetExhausted(LLMUnavailable):
    """SALESBOT_MONTHLY_BUDGET_USD is spent: no Claude call is made until the month ends."""


class BotUnauthorizedError(SalesbotError):
    """Telegram does not accept the bot (bad or revoked token, ended session): restarting cannot help,
    so `serve` exits with its own code, which the systemd unit does not restart on."""

    exit_code = 3


QUOTE_LIMIT = 80


def quoted(text: str, limit: int = QUOTE_LIMIT) -> str:
    """The operator's input as an error message quotes it: at most `limit` characters, in repr form
    (control characters escaped), so a pasted page cannot flood the terminal."""
    text = str(text)
    if len(text) > limit:
        return repr(text[:limit]) + f"… ({len(text):,} characters)"
    return repr(text)

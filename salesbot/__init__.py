"""salesbot: a Telegram sales assistant for a small business."""

__version__ = "0.1.0"

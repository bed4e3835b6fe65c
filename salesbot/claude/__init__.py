"""Claude: the client (client.py, the only module that imports anthropic), the dialogue's structured
turn (dialogue.py), the prompts and schemas (prompts.py) and the price table (pricing.py)."""

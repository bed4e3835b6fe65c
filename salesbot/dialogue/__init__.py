"""The dialogue engine, transport-agnostic: a lead's message in, replies and buttons out."""

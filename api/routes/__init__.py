"""One router per file: health, accounts, rings."""

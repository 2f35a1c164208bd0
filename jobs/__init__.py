"""Entry points users run; each composes pipeline stages and logs its config at start."""

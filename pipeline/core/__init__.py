"""The stage protocol and the one Ray Data adapter: the only place stages meet Ray."""

"""Pipeline stages and the records they pass. Stages never import Ray: one adapter maps them
onto Ray Data and a local runner runs the same stages in process."""

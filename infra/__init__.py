"""Storage URIs and atomic commits, errors, leases, cluster and process helpers: imports nothing else of musedub."""

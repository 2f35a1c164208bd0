"""Dubbing jobs: options, length policy, plan and segments, manifests, reports, stages and runners."""

"""Test configuration: hypothesis runs a fixed set of examples (derandomized), so CI is
deterministic; no deadline, since CI machines vary in speed. Run with
``--hypothesis-profile=explore`` to search new examples."""

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", max_examples=1000, deadline=None)
settings.load_profile("ci")

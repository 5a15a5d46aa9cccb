"""A hostile suite against the real agent, the real ingest and an open broker.

``python -m tests.attack`` (``make attack``) starts Mosquitto with anonymous access and
no ACL (the worst case), an ingest worker and the web app as real processes, and real
agents on emulated scales of every family; then it runs the attack cases of
:mod:`tests.attack.cases` (wire, frames, web) and measures what they achieved
(:mod:`tests.attack.harness`): ``lost``, ``altered``, ``leaked`` and ``crashed``.
"""

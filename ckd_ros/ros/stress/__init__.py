"""Reliability suite for the tracker node: hostile inputs, faults and a soak, against the real node process
over DDS (``python -m ckd_ros.ros.stress``, ``make stress``).

:mod:`.hostile` builds malformed messages, :mod:`.bench` runs one node and a probe with the checks every
case shares, :mod:`.cases` holds the cases, :mod:`.soak` the long run, :mod:`.report` the verdicts.
"""

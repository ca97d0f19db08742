"""Tracking objects through a stack with SAM 2's memory.

* :mod:`.session` -- :class:`~.session.TrackingSession`: prompts, propagation, results of one stack.
* :mod:`.object_state` -- per-object state (``ObjectTrack``, ``FrameOutput``).
* :mod:`.history` -- what a session did, in order; exact replay.
* :mod:`.lineage` -- divisions: daughters, parents and the frames each may have results on.
* :mod:`.divisions` -- automatic divisions: when a split mask is a division (pure, on masks).
* :mod:`.track_table` -- per-(object, frame) presence, IoU, area, centroid; doubtful frames.
* :mod:`.heap` -- giving freed memory back to the system during long propagations.
"""

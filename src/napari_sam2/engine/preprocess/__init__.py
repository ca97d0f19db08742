"""From pixels on disk or in memory to model input.

* :mod:`.frames` -- :class:`~.frames.FrameSource`: the frames of a stack, read lazily, as model input.
* :mod:`.intensity` -- the one rule turning microscopy intensities and channels into SAM 2's RGB.
"""

"""Where things are: stack geometry (frame axis, planes, channels), the model frame and regions.

* :mod:`.geometry` -- :class:`~.geometry.StackGeometry`: frames of a stack, the label space, (row, col).
* :mod:`.transforms` -- resizing to the ``S`` x ``S`` model frame and back; (row, col) -> model (x, y).
* :mod:`.region` -- a region (``roi``) of the frames: its checks, prompts into it, logits back out.
"""

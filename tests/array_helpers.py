"""Array-likes for tests of code that must read label stacks one frame at a time."""

from __future__ import annotations


class FrameOnly:
    """Array-like that hands out single frames only: a whole-array read fails the test."""

    def __init__(self, data) -> None:
        self.data, self.requests = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, len(data.shape)

    def __getitem__(self, index):
        assert isinstance(index, int), f"not a frame: {index!r}"
        self.requests.append(index)
        return self.data[index]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole label array was loaded")

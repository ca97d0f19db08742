"""Divisions: which object is a daughter of which, and the frames each may have results on.

A daughter starts on its first prompted frame; its parent ends on the frame
before its first daughter starts. :class:`Lineage` checks a new link against
the prompts (``first_prompted``) and answers :meth:`Lineage.span` for the
propagation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from ...errors import PromptError


class Lineage:
    """``{daughter id: parent id}`` with the rules of a division tree (no cycles, parents end first)."""

    def __init__(self) -> None:
        self.parents: dict[int, int] = {}

    def check(self, child: int, parent: int, first_prompted: Callable[[int], int | None],
              parent_prompts: Collection[int]) -> None:
        """Raise :class:`PromptError` if ``child`` cannot be a daughter of ``parent`` (``first_prompted(id)``:
        an object's first prompted frame or None; ``parent_prompts``: the frames the parent is prompted on)."""
        if child == parent:
            raise PromptError(f"object {child} cannot be its own parent.")
        ancestor = parent
        while ancestor in self.parents:
            ancestor = self.parents[ancestor]
            if ancestor == child:
                raise PromptError(f"object {child} is already an ancestor of object {parent}.")
        start = first_prompted(child)
        if start is None:
            raise PromptError(f"object {child} has no prompt yet: prompt it on the frame where it appears first, "
                              f"then mark its parent.")
        late = sorted(f for f in parent_prompts if f >= start)
        if late:
            raise PromptError(f"object {parent} has prompts on frame(s) {late}, but its daughter {child} starts on "
                              f"frame {start}: a parent ends where its daughters begin. Clear those prompts or "
                              f"prompt the daughter later.")

    def span(self, obj_id: int, first_prompted: Callable[[int], int | None], num_frames: int) -> tuple[int, int]:
        """(first, last) frame ``obj_id`` may have results on."""
        first, last = 0, num_frames - 1
        if obj_id in self.parents:
            start = first_prompted(obj_id)
            first = num_frames if start is None else start
        starts = [s for c, p in self.parents.items() if p == obj_id for s in [first_prompted(c)] if s is not None]
        if starts:
            last = min(starts) - 1
        return first, last

    def link(self, child: int, parent: int | None) -> None:
        """Make ``child`` a daughter of ``parent``, or of no one (None); unchecked (see :meth:`check`)."""
        self.parents.pop(child, None)
        if parent is not None:
            self.parents[child] = parent

    def drop(self, obj_id: int) -> None:
        """Forget every link of a removed object."""
        self.parents = {c: p for c, p in self.parents.items() if obj_id not in (c, p)}

"""What each part of the controller needs from its host: one typed :class:`typing.Protocol` per part.

The parts (:mod:`.editing`, :mod:`.propagation`, :mod:`.prompt_io`, :mod:`.lifecycle`, :mod:`.tracking`,
:mod:`.automatic`, :mod:`.region`, :mod:`.images`) get the :class:`~.controller.Sam2Controller` as ``host``;
each protocol lists exactly the attributes and methods of the host that its part uses (read here what a part depends
on), and the controller satisfies all of them. Where a part reaches a sibling part through the host, a
small protocol says which members of that sibling it uses. No Qt widgets and no behaviour here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import torch
    from napari.layers import Shapes, Tracks

    from ..engine.coords.geometry import StackGeometry
    from ..engine.segmenter import Segmenter
    from ..engine.tracking.session import TrackingSession
    from ..engine.tracking.track_table import Doubt
    from .jobs import Job, JobRunner
    from .layers import PromptLayers
    from .sync import PromptSync


class Emitter(Protocol):
    """A signal of the controller (a part only emits it; the widget connects to it)."""

    def emit(self, *args: Any) -> None: ...


class Download(Protocol):
    """The progress of a running model download (:class:`~.model_picker.DownloadProgress`)."""

    def cancel(self) -> None: ...

    def finish(self) -> None: ...


# ------------------------------------------------------------- shared pieces
class _Runs(Protocol):
    """Runs engine work: the job runner, the session opened on first use, and drawing what jobs yield."""

    runner: JobRunner

    def get_session(self) -> TrackingSession | None: ...

    def show(self, value: object) -> None: ...


class _Loads(Protocol):
    """Loads the chosen model on the first prompt when none is loaded or loading."""

    model: Segmenter | None
    model_choice: tuple  # the arguments of load_model: (source, device, dtype)

    def jobs(self) -> list[Job]: ...

    def load_model(self, source: str | Path, device: str | torch.device | None = None,
                   dtype: str | torch.dtype | None = None) -> None: ...


# ------------------------------------------------------------- sibling parts
class EditingObjects(Protocol):
    """What :class:`~.images.Images` and :class:`~.prompt_io.PromptFiles` use of :class:`~.editing.Editing`."""

    objects: dict[int, str]

    def replace_objects(self, objects: dict[int, str]) -> None: ...

    def select_object(self, obj: int) -> None: ...


class RegionState(Protocol):
    """What other parts use of :class:`~.region.Region`."""

    layer: Shapes | None
    roi: tuple[int, int, int, int] | None

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None: ...

    def edited(self, event: Any = None) -> None: ...

    def forget(self, layer: Any) -> bool: ...


class TrackingState(Protocol):
    """What other parts use of :class:`~.tracking.Tracking`."""

    marked: dict[int, int]
    stop_absent_after: int | None
    rows: list[dict]
    doubts: list[Doubt]
    tracks: Tracks | None

    def refresh(self) -> None: ...


class Seeding(Protocol):
    """What :class:`~.automatic.Finder` uses of :class:`~.tracking.Tracking`."""

    def ids_in_use(self) -> set[int]: ...

    def seed_plane(self, plane: np.ndarray, frame: int, source: str, prefix: str) -> dict[int, int]: ...


class PropagationState(Protocol):
    """What other parts use of :class:`~.propagation.Propagation`."""

    resume: tuple | None

    def close_bar(self) -> None: ...


class FinderState(Protocol):
    """What :class:`~.lifecycle.Lifecycle` uses of :class:`~.automatic.Finder`."""

    def close_bar(self) -> None: ...


class Notifier(Protocol):
    """What :class:`~.images.Images` uses of :class:`~.lifecycle.Lifecycle`."""

    def notify_later(self, show: Callable[[str], Any], message: str, image: bool = False) -> None: ...


# -------------------------------------------------------------- the parts
class EditingHost(Protocol):
    """The host of :class:`~.editing.Editing`."""

    geometry: StackGeometry | None
    layers: PromptLayers
    sync_state: PromptSync

    @property
    def objects_changed(self) -> Emitter: ...

    @property
    def polarity_changed(self) -> Emitter: ...

    def current_frame(self) -> int: ...

    def quiet(self) -> AbstractContextManager[None]: ...

    def sync(self) -> None: ...

    def submit_session_task(self, key: Any, task: Callable[..., Iterator[Any]], description: str, *args: Any) -> None:
        ...


class PropagationHost(_Runs, Protocol):
    """The host of :class:`~.propagation.Propagation`."""

    geometry: StackGeometry | None
    image: Any  # the napari Image layer, or None
    model: Segmenter | None
    download: Download | None

    sync_state: PromptSync
    tracking: TrackingState

    @property
    def message(self) -> Emitter: ...

    @property
    def status(self) -> Emitter: ...

    def go_to_frame(self, frame: int) -> None: ...


class PromptFilesHost(_Runs, _Loads, Protocol):
    """The host of :class:`~.prompt_io.PromptFiles`."""

    geometry: StackGeometry | None
    image: Any
    layers: PromptLayers
    session: TrackingSession | None
    sync_state: PromptSync
    editing: EditingObjects
    region: RegionState
    tracking: TrackingState

    @property
    def objects(self) -> dict[int, str]: ...

    @property
    def message(self) -> Emitter: ...

    def quiet(self) -> AbstractContextManager[None]: ...


class LifecycleHost(Protocol):
    """The host of :class:`~.lifecycle.Lifecycle`."""

    viewer: Any  # the napari viewer (None after shutdown)
    image: Any
    layers: PromptLayers
    runner: JobRunner
    session: TrackingSession | None
    closed: bool
    download: Download | None
    propagation: PropagationState
    finder: FinderState
    region: RegionState

    def set_image(self, layer: Any, *, removed: bool = False) -> None: ...

    def image_data_changed(self, event: Any = None) -> None: ...

    def points_edited(self, event: Any) -> None: ...

    def defaults_changed(self, event: Any = None) -> None: ...

    def sync(self) -> None: ...


class TrackingHost(_Runs, _Loads, Protocol):
    """The host of :class:`~.tracking.Tracking`."""

    viewer: Any
    image: Any
    geometry: StackGeometry | None
    layers: PromptLayers
    session: TrackingSession | None
    closed: bool
    sync_state: PromptSync

    @property
    def objects(self) -> dict[int, str]: ...

    @property
    def current_obj(self) -> int: ...

    @property
    def message(self) -> Emitter: ...

    @property
    def objects_changed(self) -> Emitter: ...

    @property
    def table_changed(self) -> Emitter: ...

    def add_object(self, name: str | None = None) -> int: ...

    def select_object(self, obj: int) -> None: ...

    def current_frame(self) -> int: ...

    def go_to_frame(self, frame: int) -> None: ...

    def quiet(self) -> AbstractContextManager[None]: ...


class FinderHost(_Runs, _Loads, Protocol):
    """The host of :class:`~.automatic.Finder`."""

    geometry: StackGeometry | None
    region: RegionState
    tracking: Seeding

    @property
    def message(self) -> Emitter: ...

    @property
    def status(self) -> Emitter: ...

    def current_frame(self) -> int: ...


class RegionHost(Protocol):
    """The host of :class:`~.region.Region`."""

    viewer: Any
    image: Any
    geometry: StackGeometry | None

    @property
    def message(self) -> Emitter: ...

    def rebind(self, *, restore: StackGeometry | None = None) -> None: ...


class ImagesHost(_Runs, Protocol):
    """The host of :class:`~.images.Images`."""

    viewer: Any
    image: Any
    geometry: StackGeometry | None
    layers: PromptLayers
    sync_state: PromptSync
    editing: EditingObjects
    propagation: PropagationState
    region: RegionState
    tracking: TrackingState
    lifecycle: Notifier

    @property
    def objects(self) -> dict[int, str]: ...

    @property
    def current_obj(self) -> int: ...

    def jobs(self) -> list[Job]: ...

    def points_edited(self, event: Any) -> None: ...

    def defaults_changed(self, event: Any = None) -> None: ...

"""Files in and out. Every writer is atomic (:mod:`.atomic`): an output appears complete or not at all.

* :mod:`.stack_files` -- read image stacks lazily (TIFF / OME-TIFF, zarr / OME-Zarr, ``.npy``).
* :mod:`.label_files` -- write label images (OME-TIFF, OME-Zarr, zarr, TIFF, ``.npy``), plane by plane.
* :mod:`.prompt_file` -- the JSON prompt file: a session's history, for exact replay.
* :mod:`.ctc`, :mod:`.geff`, :mod:`.trackmate` -- tracking results as a Cell Tracking Challenge folder, a
  GEFF graph or a TrackMate XML file, from one frame-by-frame scan of the labels (:mod:`.label_scan`).
"""

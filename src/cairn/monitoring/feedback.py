"""Ground-truth labels for served predictions, as monitoring reads and records them.

They are stored beside the prediction log by :mod:`cairn.serving.feedback` (the serving
process writes them too, so the code lives there); this module is the monitoring-side
name for the same functions::

    from cairn.monitoring.feedback import record_feedback, read_labels
"""

from __future__ import annotations

from ..serving.feedback import (EXPERIMENT, MAX_RECORDS, MODEL_TAG, SEGMENTS, FeedbackResult,
                                FeedbackStore, Label, Rejected, check_model, check_records,
                                labels_of, read_file, read_labels, record_feedback)

__all__ = ["EXPERIMENT", "MAX_RECORDS", "MODEL_TAG", "SEGMENTS", "FeedbackResult",
           "FeedbackStore", "Label", "Rejected", "check_model", "check_records", "labels_of",
           "read_file", "read_labels", "record_feedback"]

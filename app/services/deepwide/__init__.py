"""Deep/wide calibrations of the service (issue 11, item 5): a deep map, a wide map, a
transfer catalogue and the spectra tied in the ledger, the n(z) computed by
:mod:`som.deepwide` as a job and recomputed whenever spectra or a tied catalogue arrive or
leave (like coverage), its files, figure and the targets aimed at it.

``lifecycle`` creates, queues and computes a calibration; ``products`` reads what was
computed. Both are re-exported here: callers write ``deepwide.create``, ``deepwide.result``.

**The transfer catalogue in the ledger.** Every catalogue is already assigned to every
ready map (:mod:`app.services.ledger`), so the service needs no new per-row table: the
wide-noise photometry of the transfer objects is a photometric catalogue (assigned to the
wide map) whose ``source_id`` names the deep galaxy each row injects, and the deep side is
the photometric catalogue with those galaxies' deep photometry (assigned to the deep map;
by default the deep catalogue itself). p(c|ĉ) is the joint histogram of the matched rows
(:func:`pair_transfer`). This is the Balrog layout (one deep measurement, many wide
injections of it) without storing the deep photometry once per injection, and a 1:1 pair
of catalogues with the same ids is the special case of one injection each. Each transfer
row weighs 1 / (injections of its deep galaxy), so each deep galaxy weighs one in total,
the mock's ``weight`` convention. The same ids tie a spectrum to its galaxy's injections
for bin conditioning.

**What is used of the ledger.** Every row with a cell on its map, including rows flagged
``outside_training`` (the deep/wide estimator weighs the whole wide sample, and
``DeepWideCalibration`` does the same); secure spectra only, from every spectroscopic
catalogue, as coverage uses them.

**Recomputation.** :func:`queue_for_catalogue` is called by the ledger hooks inside the
ingest or delete transaction: it queues one ``calibrate_deepwide`` job per calibration
concerned (a spectroscopic catalogue concerns every calibration, a photometric one those
that tie it), unless one is already waiting. The calibration records its latest job; an
older job still running finds itself superseded when it would store and writes nothing,
so the stored n(z) is always from the latest inputs that were computed.
"""

from app.services.deepwide.lifecycle import (
    KIND,
    compute,
    create,
    missing_inputs,
    pair_transfer,
    queue_for_catalogue,
    recompute,
)
from app.services.deepwide.products import (
    Result,
    deep_cell_weights,
    delete,
    describe,
    ensemble,
    get,
    list_all,
    nz_answer,
    nz_file,
    nz_png,
    result,
    targets,
)

__all__ = [
    "KIND",
    "Result",
    "compute",
    "create",
    "deep_cell_weights",
    "delete",
    "describe",
    "ensemble",
    "get",
    "list_all",
    "missing_inputs",
    "nz_answer",
    "nz_file",
    "nz_png",
    "pair_transfer",
    "queue_for_catalogue",
    "recompute",
    "result",
    "targets",
]

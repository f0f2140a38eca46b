"""Run reports: the JSON document a conformance run writes, and what is rendered from it.

The JSON document is the one artefact of a run that outlives the terminal, so
everything a reader of a report needs (metadata, per-clause outcome, the
scenarios behind each clause) is in it, and every renderer (HTML, Markdown,
badge) is a pure function of it.  That keeps a report reproducible from the
file alone: CI jobs can render, merge and re-render without the driver, the
broker or the kit's pytest plugin.

This module holds only constants, so that importing it (from the CLI, or from
a renderer) costs nothing.  The exit codes are :mod:`driver_conformance.exitcodes`'.
"""

from __future__ import annotations

from driver_conformance import outcomes as _oc

#: Version of the report format.  Readers accept every document of the same
#: major version; a minor bump only adds optional fields or outcome values
#: (1.1: the ``not-applicable`` outcome, per-clause judgments of scenarios,
#: expectations in ``run``, reasons for clauses not judged).
SCHEMA_VERSION = "1.1"
#: The ``kind`` every report document carries, to tell it from other JSON.
KIND = "driver-conformance-report"

#: Scenario and clause outcomes, in the order renderers list them.
OUTCOMES = (_oc.PASS, _oc.FAIL, _oc.ERROR, _oc.XFAIL, _oc.XPASS, _oc.UNSUPPORTED,
            _oc.NOT_APPLICABLE, _oc.NOT_RUN)

COMPLIANT = "compliant"
NON_COMPLIANT = "non-compliant"
UNKNOWN = "unknown"
VERDICTS = (COMPLIANT, NON_COMPLIANT, UNKNOWN)

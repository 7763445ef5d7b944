"""The synthetic world: seeded CFPB complaints in the official export format, fitted to real data.

Not ingestion: it writes what ingestion reads (daily landing files, full-history exports), so the
platform runs without the real database. The same seed gives the same bytes on any machine.

- `profile`: the world's parameters, fitted on the real extracts (`cfpb_profile.json`, figures
  only) and loaded with importlib.resources.
- `samplers`: the profile compiled into categorical draws, quantile tables and dispute logits.
- `volume`: how many complaints each day receives.
- `records`: one day's complaints, drawn column by column.
- `labels`: dispute outcomes, and when a day's labels are published.
- `narratives`: narrative text whose wording tracks the dispute; `pii`: the unmasked personal data
  planted in a few of them.
- `drift`: the drift scenario (product mix, a new issue, new wording) from a day on.
- `defects`: the realistic defects of real exports.
- `export`: writing all of it in the official format, as landing days or one export file.
"""

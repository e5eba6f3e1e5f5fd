"""Import and export formats: cleaned results out to the tools users already have, decisions back in,
and datasets in (a Hugging Face dataset read as a manifest, :mod:`coreclean.formats.hf_source`).

Each module is one format and works on plain tables (one row per sample) or manifests, never on a
session, so sessions and the CLI stay the only places that know where the tables come from.
"""

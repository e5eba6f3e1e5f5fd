"""Import and export formats: cleaned results out to the tools users already have, decisions back in.

Each module is one format and works on plain tables (one row per sample), never on a session, so
sessions and the CLI stay the only places that know where the tables come from.
"""

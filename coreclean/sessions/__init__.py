"""Step 3: cleaning sessions. A facade (:class:`~coreclean.sessions.session.CleaningSession`) over the decision log, batch choice, decision validation, the stop verdict and export."""

"""Real traffic: access logs read as requests (``logs``), what a policy predicts for them
(``predict``), and replaying them against the real engines (``drive``). Everything here streams:
a log is read line by line, never held whole."""

"""CVE: the electronic vaccination record (carnet de vaccination électronique) and its recommendation engine."""

"""WSE (Web Service Externe): affiliation and right-to-prescribe checks for pharmacies, laboratories and the CGDIS."""

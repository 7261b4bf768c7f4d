"""eSanté accounts (compte eSanté): patients, professionals, agency staff; DSP assistants are patient accounts
acting for another patient. See docs/security.md ("Accounts")."""

//! What an attacker holding the root sealing secret and the host's files can open (issue 11 part 4). Placeholder.

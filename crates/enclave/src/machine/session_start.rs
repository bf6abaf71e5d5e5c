//! The start of a boundary session, written into the log (issue 11 part 3). Placeholder.

//! Shared helpers for the file-driven tests.

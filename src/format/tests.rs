//! Unit tests of the reader and writer.
